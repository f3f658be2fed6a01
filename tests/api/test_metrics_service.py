import uuid
from datetime import UTC, datetime, timedelta

import pytest


def event(visitor, variant="A", event_type="page_view", **extra):
    return {"visitor_id": visitor, "variant": variant, "event_type": event_type, **extra}


def post(client, payload):
    return client.post("/events", json=payload)


def test_health(metrics_client):
    assert metrics_client.get("/health").get_json() == {"status": "ok"}


def test_single_and_batch_ingest(metrics_client, metrics_app):
    assert post(metrics_client, event("v1")).get_json() == {"accepted": 1, "duplicates": 0}
    response = post(metrics_client, [event("v2"), event("v2", event_type="cta_click")])
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 2, "duplicates": 0}
    assert metrics_app.extensions["metrics_store"].count_events() == 3


def test_repeated_event_id_is_stored_once(metrics_client, metrics_app):
    event_id = str(uuid.uuid4())
    assert post(metrics_client, event("v1", event_id=event_id)).get_json() == {"accepted": 1, "duplicates": 0}
    assert post(metrics_client, event("v1", event_id=event_id)).get_json() == {"accepted": 0, "duplicates": 1}
    twice_in_batch = [event("v2", event_id=str(uuid.UUID(int=7))), event("v2", event_id=str(uuid.UUID(int=7)))]
    assert post(metrics_client, twice_in_batch).get_json() == {"accepted": 1, "duplicates": 1}
    assert metrics_app.extensions["metrics_store"].count_events() == 2


def test_bad_batch_lists_every_problem_and_stores_nothing(metrics_client, metrics_app):
    response = post(metrics_client, [event("v1"), event("v2", event_type="buy"), {"variant": "A"}])
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(1, "event_type"), (2, "visitor_id"), (2, "event_type")}
    assert metrics_app.extensions["metrics_store"].count_events() == 0


@pytest.mark.parametrize("body", [b"", b"{oops", b"\xff\xfe"])
def test_malformed_bodies_get_400(metrics_client, body):
    response = metrics_client.post("/events", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"


def test_oversized_body_gets_413(metrics_client):
    huge = [event(f"v{i}", properties={"pad": "x" * 1000}) for i in range(400)]
    response = post(metrics_client, huge)
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"


def seed(client):
    # A: 4 viewers, 2 click, 1 signs up; B: 2 viewers, 2 click, 2 sign up; one B click without a view
    rows = [event(f"a{i}") for i in range(4)] + [event("a0"), event("a0")]
    rows += [event("a0", event_type="cta_click"), event("a1", event_type="cta_click"),
             event("a1", event_type="form_submit")]
    rows += [event(f"b{i}", "B") for i in range(2)]
    rows += [event(f"b{i}", "B", "cta_click") for i in range(2)]
    rows += [event(f"b{i}", "B", "form_submit") for i in range(2)]
    rows += [event("b9", "B", "cta_click")]
    assert post(client, rows).status_code == 202


def test_stats_totals_matrix_and_conversion(metrics_client):
    seed(metrics_client)
    stats = metrics_client.get("/stats").get_json()
    assert stats["total_events"] == 16
    assert stats["unique_visitors"] == 7
    assert stats["by_variant"] == {"A": {"events": 9, "visitors": 4}, "B": {"events": 7, "visitors": 3}}
    assert stats["by_event_type"]["page_view"] == {"events": 8, "visitors": 6}
    assert stats["by_event_type"]["cta_click"] == {"events": 5, "visitors": 5}
    cell = next(c for c in stats["matrix"] if c["variant"] == "A" and c["event_type"] == "page_view")
    assert cell == {"variant": "A", "event_type": "page_view", "events": 6, "visitors": 4}
    conv = stats["conversion"]
    assert conv["A"]["visitors"] == 4
    assert conv["A"]["cta_click"] == {"visitors": 2, "rate": 0.5}
    assert conv["A"]["form_submit"] == {"visitors": 1, "rate": 0.25}
    assert conv["B"]["cta_click"] == {"visitors": 2, "rate": 1.0}  # b9 never viewed the page


def test_stats_filters(metrics_client):
    seed(metrics_client)
    only_b = metrics_client.get("/stats?variant=B").get_json()
    assert set(only_b["by_variant"]) == {"B"}
    clicks = metrics_client.get("/stats?event_type=cta_click").get_json()
    assert set(clicks["by_event_type"]) == {"cta_click"}
    assert clicks["total_events"] == 5
    other = metrics_client.get("/stats?experiment=hero").get_json()
    assert other["total_events"] == 0 and other["conversion"] == {}


def test_stats_time_window(metrics_client):
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    post(metrics_client, [event("old", timestamp=old), event("new")])
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = metrics_client.get("/stats", query_string={"since": since}).get_json()
    assert recent["total_events"] == 1
    until = metrics_client.get("/stats", query_string={"until": since}).get_json()
    assert until["total_events"] == 1


@pytest.mark.parametrize("query,field", [("event_type=buy", "event_type"), ("since=yesterday", "since"),
                                         ("since=2026-02-01&until=2026-01-01", "since")])
def test_stats_bad_filters_get_400(metrics_client, query, field):
    response = metrics_client.get(f"/stats?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == field


def test_excluded_events_are_stored_but_not_counted(metrics_client, metrics_app):
    post(metrics_client, [event("v1"), event("qa", "B", forced=True), event("out", in_experiment=False)])
    assert metrics_app.extensions["metrics_store"].count_events() == 1
    stats = metrics_client.get("/stats").get_json()
    assert stats["total_events"] == 1
    assert set(stats["by_variant"]) == {"A"}
    from sqlalchemy import func, select

    from metrics_service.store import events

    with metrics_app.extensions["metrics_store"].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3
