"""POST /events needs the ingest key (or an admin token), is refused when none is configured, and is
rate-limited per key; the landing service sends the key."""
from contextlib import ExitStack

import pytest
import requests

from tests.helpers import ADMIN_TOKEN, INGEST_HEADERS, INGEST_KEY, flask_app, make_landing

EVENT = {"visitor_id": "v1", "variant": "A", "event_type": "page_view"}


@pytest.fixture
def metrics(db_url):
    """A factory of metrics_service apps on the test database, configured by the environment given."""
    with ExitStack() as apps:
        yield lambda **env: apps.enter_context(flask_app("metrics_service", DATABASE_URL=db_url, **env))


def stored(app) -> int:
    return app.extensions["metrics_store"].count_events()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, bearer("wrong-key"), bearer(INGEST_KEY + "x"), bearer(INGEST_KEY[:-1]),
                                     {"Authorization": INGEST_KEY}, {"Authorization": f"Basic {INGEST_KEY}"}],
                         ids=["none", "wrong", "longer", "shorter", "no scheme", "basic"])
def test_events_without_a_valid_key_are_refused(metrics, headers):
    app = metrics(INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN)
    response = app.test_client().post("/events", json=[EVENT], headers=headers)
    assert response.status_code == 401
    assert response.get_json()["message"] == "a valid ingest key is required (Authorization: Bearer <INGEST_KEY>)"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(app) == 0


@pytest.mark.parametrize("token", [INGEST_KEY, ADMIN_TOKEN, "alice-secret"], ids=["ingest key", "admin", "named"])
def test_the_ingest_key_or_an_admin_token_is_accepted(metrics, token):
    app = metrics(INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN, ADMIN_TOKENS="alice:alice-secret")
    response = app.test_client().post("/events", json=[EVENT], headers=bearer(token))
    assert response.status_code == 202
    assert stored(app) == 1


def test_without_a_configured_key_ingest_is_refused(metrics):
    app = metrics(INGEST_KEY="", ADMIN_TOKEN="")
    client = app.test_client()
    for headers in ({}, bearer("anything"), bearer("")):
        response = client.post("/events", json=[EVENT], headers=headers)
        assert response.status_code == 401
        assert "no ingest key configured" in response.get_json()["message"]
    assert stored(app) == 0
    # Reads stay open.
    assert client.get("/stats").status_code == 200


def test_without_a_configured_key_an_admin_token_still_sends(metrics):
    app = metrics(INGEST_KEY="", ADMIN_TOKEN=ADMIN_TOKEN)
    assert app.test_client().post("/events", json=[EVENT], headers=bearer(ADMIN_TOKEN)).status_code == 202
    assert app.test_client().post("/events", json=[EVENT], headers=bearer("")).status_code == 401


def test_each_key_is_rate_limited_on_its_own(metrics):
    app = metrics(INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN, RATE_LIMIT_INGEST="3/minute")
    client = app.test_client()
    for n in range(3):
        assert client.post("/events", json=[{**EVENT, "visitor_id": f"v{n}"}], headers=INGEST_HEADERS).status_code \
            == 202
    limited = client.post("/events", json=[EVENT], headers=INGEST_HEADERS)
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "too_many_requests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert stored(app) == 3
    # Another key has its own allowance; refused requests do not spend one.
    assert client.post("/events", json=[EVENT], headers=bearer(ADMIN_TOKEN)).status_code == 202
    assert client.post("/events", json=[EVENT], headers=bearer("wrong")).status_code == 401


def test_an_empty_rate_limit_turns_it_off(metrics):
    app = metrics(INGEST_KEY=INGEST_KEY, RATE_LIMIT_INGEST="")
    client = app.test_client()
    assert all(client.post("/events", json=[EVENT], headers=INGEST_HEADERS).status_code == 202 for _ in range(20))


def test_openapi_describes_the_ingest_key(metrics_client):
    spec = metrics_client.get("/openapi.json").get_json()
    operation = spec["paths"]["/events"]["post"]
    assert operation["security"] == [{"ingestKey": []}, {"token": ["admin"]}]
    assert {"401", "413", "429"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["ingestKey"]["scheme"] == "bearer"


def test_the_landing_service_sends_its_ingest_key(landing_app, landing_client, metrics_server):
    landing_client.get("/")
    assert landing_app.extensions["outbox"].flush() == 1
    assert metrics_server.app.extensions["metrics_store"].count_events() == 1


def test_a_landing_service_without_the_key_keeps_its_events(tmp_path, ab_server, metrics_server):
    app = make_landing(tmp_path, ab_server.url, metrics_server.url, INGEST_KEY="")
    app.test_client().get("/")
    outbox = app.extensions["outbox"]
    with pytest.raises(requests.HTTPError) as refused:
        outbox.flush()
    assert refused.value.response.status_code == 401
    assert outbox.pending() == 1
    assert metrics_server.app.extensions["metrics_store"].count_events() == 0
