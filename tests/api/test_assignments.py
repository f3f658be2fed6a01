"""POST /assignments: the landing page's own assignments, remembered insert-if-new, on both backends."""
import json

import pytest

from tests.helpers import ADMIN_TOKEN, flask_app

INGEST_KEY = "test-ingest-key"
INGEST = {"Authorization": f"Bearer {INGEST_KEY}"}


@pytest.fixture
def client(db_url):
    with flask_app("ab_service", DATABASE_URL=db_url, ADMIN_TOKEN=ADMIN_TOKEN, INGEST_KEY=INGEST_KEY,
                   MAX_BODY_BYTES=str(64 * 1024)) as app:
        yield app.test_client()


def row(visitor: str, variant: str = "B", experiment: str = "landing") -> dict:
    return {"experiment": experiment, "visitor_id": visitor, "variant": variant}


def assigned(client, visitor: str, experiment: str = "landing") -> dict:
    return client.get(f"/assign?experiment={experiment}&visitor_id={visitor}").get_json()


def test_first_assignment_wins_and_assign_agrees(client):
    first = client.post("/assignments", json=[row("v1", "B"), row("v2", "A"), row("v1", "A")], headers=INGEST)
    assert first.status_code == 200 and first.get_json() == {"stored": 2}
    again = client.post("/assignments", json=[row("v1", "A"), row("v3", "A")], headers=INGEST)
    assert again.get_json() == {"stored": 1}
    assert [assigned(client, v)["variant"] for v in ("v1", "v2", "v3")] == ["B", "A", "A"]
    # a visitor /assign has already placed keeps that variant
    placed = assigned(client, "v4")["variant"]
    other = "A" if placed == "B" else "B"
    assert client.post("/assignments", json=[row("v4", other)], headers=INGEST).get_json() == {"stored": 0}
    assert assigned(client, "v4")["variant"] == placed


def test_needs_the_ingest_key_or_an_admin_token(client):
    assert client.post("/assignments", json=[row("v1")]).status_code == 401
    wrong = client.post("/assignments", json=[row("v1")], headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "unauthorized"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post("/assignments", json=[row("v1")], headers=admin).get_json() == {"stored": 1}


def test_without_an_ingest_key_configured_only_admins_may(ab_client, admin_headers):
    assert ab_client.post("/assignments", json=[row("v1")], headers=INGEST).status_code == 401
    assert ab_client.post("/assignments", json=[row("v1")], headers=admin_headers).status_code == 200


def test_unknown_experiments_and_variants_are_named(client):
    client.post("/experiments", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={
        "key": "later", "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]})
    response = client.post("/assignments", headers=INGEST, json=[
        row("v1"), row("v2", experiment="nope"), row("v3", variant="Z"), row("v4", experiment="later")])
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.get_json()["errors"]] == [
        (1, "experiment"), (2, "variant"), (3, "experiment")]
    assert "no variant 'Z'" in response.get_json()["errors"][1]["message"]
    assert response.get_json()["errors"][2]["message"] == "the experiment is a draft"
    assert not _stored(client, "v1")  # nothing of a refused batch is stored


def _stored(client, visitor: str) -> bool:
    """Whether v has a stored landing assignment: a new one would be the hash's, so ask with a batch."""
    return client.post("/assignments", json=[row(visitor, "A"), row(visitor, "B")], headers=INGEST).get_json()[
        "stored"] == 0


@pytest.mark.parametrize("body,index,field", [
    ([], None, None),
    ({"experiment": "landing", "visitor_id": "v1", "variant": "A"}, None, None),
    ([row("v1"), {"experiment": "landing", "visitor_id": "v2"}], 1, "variant"),
    ([{**row("v1"), "visitor_id": None}], 0, "visitor_id"),
    ([{**row("v1"), "visitor_id": ""}], 0, "visitor_id"),
    ([{**row("v1"), "visitor_id": "x" * 129}], 0, "visitor_id"),
    ([{**row("v1"), "extra": 1}], 0, "extra"),
    ([row(f"v{i}") for i in range(1001)], None, None),
])
def test_malformed_batches_are_refused_whole(client, body, index, field):
    response = client.post("/assignments", json=body, headers=INGEST)
    assert response.status_code == 400
    assert (index, field) in {(e.get("index"), e["field"]) for e in response.get_json()["errors"]}
    assert not _stored(client, "v1")


def test_body_limit(client):
    big = json.dumps([row(f"visitor-{i:06}-" + "x" * 90) for i in range(1000)])
    response = client.post("/assignments", data=big, content_type="application/json", headers=INGEST)
    assert response.status_code == 413
