"""metrics_service's account of folding: /health reports the fold queue and the events set aside, and
an admin lists those events (GET /events/fold-failures)."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from metrics_service.store import aggregates
from tests.api.test_metrics_service import NOTHING_QUEUED, event, post
from tests.helpers import ADMIN_TOKEN, INGEST_KEY, flask_app

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def metrics_app(db_url):
    """The app of conftest's metrics_client, with an admin token."""
    with flask_app("metrics_service", DATABASE_URL=db_url, INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN) as app:
        yield app


def fail_to_fold(monkeypatch, visitor: str, error: type[Exception]) -> None:
    """Every fold of an event of `visitor` fails with `error` (a bug, or data the fold cannot take)."""
    apply = aggregates.apply

    def failing_apply(conn, rows, *args, **kwargs):
        if any(row.visitor_id == visitor for row in rows):
            raise error(f"cannot fold {visitor}")
        return apply(conn, rows, *args, **kwargs)

    monkeypatch.setattr(aggregates, "apply", failing_apply)


def test_health_reports_the_fold_backlog_and_the_events_set_aside(metrics_client, metrics_app, monkeypatch):
    store = metrics_app.extensions["metrics_store"]
    store.stop_folding()
    store.start_folding(delay=3600, poll=3600)  # a folder too busy to fold within the test
    post(metrics_client, [event(f"v{n}") for n in range(5)] + [event("bad")])
    health = metrics_client.get("/health")
    folding = health.get_json()["folding"]
    assert (health.status_code, health.get_json()["status"]) == (200, "ok")
    assert (folding["queued"], folding["queued_more"], folding["failed"]) == (6, False, 0)
    assert 0 <= folding["oldest_queued_seconds"] < 30

    fail_to_fold(monkeypatch, "bad", ZeroDivisionError)
    stats = metrics_client.get("/stats")  # it settles first: the failing event is set aside, the rest counted
    assert stats.status_code == 200 and stats.get_json()["total_events"] == 5
    health = metrics_client.get("/health")
    assert (health.status_code, health.get_json()) == (200, {"status": "degraded",
                                                            "folding": {**NOTHING_QUEUED, "failed": 1}})
    store.stop_folding()


def test_an_admin_sees_the_events_whose_fold_failed(metrics_client, metrics_app, monkeypatch):
    fail_to_fold(monkeypatch, "bad", KeyError)
    bad_id = str(uuid.uuid4())
    post(metrics_client, [event("v1"), event("bad", event_type="cta_click", event_id=bad_id), event("v2")])
    assert metrics_client.get("/stats").get_json()["total_events"] == 2
    assert metrics_app.test_client().get("/events/fold-failures").status_code == 401
    [failure] = metrics_app.test_client().get("/events/fold-failures", headers=ADMIN).get_json()["failures"]
    assert failure["error"].startswith("KeyError at tests/api/test_folding.py:")  # not the visitor
    assert {k: failure[k] for k in ("event_id", "experiment", "event_type")} == {
        "event_id": bad_id, "experiment": "landing", "event_type": "cta_click"}
    assert abs(datetime.fromisoformat(failure["failed_at"]) - datetime.now(UTC)) < timedelta(minutes=1)

    monkeypatch.undo()  # the bug is fixed: a rebuild counts the event and empties the list
    assert metrics_app.test_cli_runner().invoke(args=["rebuild-aggregates"]).exit_code == 0
    assert metrics_client.get("/stats").get_json()["total_events"] == 3
    assert metrics_app.test_client().get("/events/fold-failures", headers=ADMIN).get_json() == {"failures": []}
    assert metrics_client.get("/health").get_json() == {"status": "ok", "folding": NOTHING_QUEUED}


def test_a_readout_settles_once_and_counts_what_was_acknowledged_before_it(metrics_client, metrics_app, monkeypatch):
    store = metrics_app.extensions["metrics_store"]
    store.stop_folding()  # only readouts fold within the test
    post(metrics_client, [event(f"v{n}") for n in range(4)])
    settles = []
    settle = store.settle
    monkeypatch.setattr(store, "settle", lambda: (settles.append(1), settle())[1])
    assert metrics_client.get("/stats").get_json()["total_events"] == 4
    assert len(settles) == 1  # five reads, several of them nested: one settle
    post(metrics_client, [event("w")])
    settles.clear()
    assert store.count_events() == 5  # a read outside a readout settles on its own
    assert len(settles) == 1
