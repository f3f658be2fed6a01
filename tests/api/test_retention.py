"""EVENT_RETENTION_DAYS: older raw events are deleted in batches while ingest goes on, nothing inside
the window is lost, the aggregates still answer as before, and one holder runs the daily job (both
backends)."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.db import now_millis
from metrics_service.retention import LEASE_MS, RUN_EVERY_MS, cutoff_ms, purge, run_if_due
from metrics_service.store import event_context
from tests.helpers import ADMIN_TOKEN, INGEST_HEADERS, INGEST_KEY, flask_app, run_together

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAYS = 1


@pytest.fixture
def app(db_url):
    with flask_app("metrics_service", DATABASE_URL=db_url, INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN) as app:
        yield app


def event(visitor: str, event_type: str, when: datetime, experiment: str = "landing", variant: str = "A") -> dict:
    context = {"context": {"device": "mobile"}} if event_type == "page_view" else {}
    return {"visitor_id": visitor, "variant": variant, "event_type": event_type, "experiment": experiment,
            "event_id": str(uuid.uuid4()), "timestamp": when.isoformat(), **context}


def send(client, rows):
    for start in range(0, len(rows), 500):
        response = client.post("/events", json=rows[start:start + 500], headers=INGEST_HEADERS)
        assert response.status_code == 202, response.get_json()


def stored_event_ids(client) -> set[str]:
    lines = client.get("/events/export?format=ndjson", headers=ADMIN).get_data(as_text=True).splitlines()
    return {json.loads(line)["event_id"] for line in lines}


def answers(client, experiment: str) -> dict:
    """What the aggregates answer about an experiment: stats, timeseries, funnel and both readouts (stats
    and timeseries of a segment too)."""
    paths = [f"/stats?experiment={experiment}", f"/stats/timeseries?experiment={experiment}&interval=day",
             f"/stats?experiment={experiment}&segment=device:mobile",
             f"/stats/timeseries?experiment={experiment}&interval=hour&segment=device:mobile",
             f"/stats/funnel?experiment={experiment}", f"/experiments/{experiment}/timeseries?metric=form_submit",
             *(f"/experiments/{experiment}/results?metric={m}" for m in ("cta_click", "form_submit"))]
    return {path: client.get(path).get_json() for path in paths}


def test_retention_with_concurrent_ingest_loses_no_event_inside_the_window(app):
    client = app.test_client()
    store = app.extensions["metrics_store"]
    now = datetime.now(UTC)
    cutoff = cutoff_ms(now_millis(), DAYS)
    # outside the window: an experiment of three days ago; inside: one that ended 23 hours ago
    old = [event(f"o{i}", kind, now - timedelta(days=3, minutes=i % 90), "old", "AB"[i % 2])
           for i in range(1200) for kind in ("page_view", "cta_click", "form_submit")[:1 + i % 3]]
    kept = [event(f"k{i}", "page_view", now - timedelta(hours=23)) for i in range(300)]
    send(client, old + kept)
    before_old, total_before = answers(client, "old"), client.get("/stats").get_json()["total_events"]

    # ingest in four threads while the job deletes in batches of 50 (short transactions in between)
    new = [[event(f"n{t}-{i}", "page_view", now) for i in range(400)] for t in range(4)]

    def ingest(rows):
        sender = app.test_client()
        for start in range(0, len(rows), 20):
            assert sender.post("/events", json=rows[start:start + 20], headers=INGEST_HEADERS).status_code == 202
        return len(rows)

    results = run_together(lambda: purge(store, cutoff, batch=50, pause=0),
                           *(lambda rows=rows: ingest(rows) for rows in new))
    assert results == [len(old), 400, 400, 400, 400]

    stored = stored_event_ids(client)
    inside = {e["event_id"] for e in kept} | {e["event_id"] for rows in new for e in rows}
    assert stored == inside  # everything inside the window, nothing outside it
    with store.engine.connect() as conn:  # the exposures' contexts go with their events
        contexts = set(conn.execute(select(event_context.c.event_id)).scalars())
    assert contexts == inside  # every event kept here is a page view with a context
    # the aggregates are kept: they still count the deleted events, exactly as before
    assert answers(client, "old") == before_old
    assert client.get("/stats").get_json()["total_events"] == total_before + 1600
    assert before_old["/experiments/old/results?metric=form_submit"]["variants"][0]["visitors"] == 600
    assert before_old["/stats?experiment=old&segment=device:mobile"]["total_events"] == len(old)
    # the per-visitor export reads raw events: it covers only what is kept
    assert client.get("/experiments/old/export", headers=ADMIN).get_data(as_text=True).count("\n") == 1
    assert purge(store, cutoff, batch=50) == 0


def test_one_holder_runs_the_daily_job(app):
    client = app.test_client()
    store = app.extensions["metrics_store"]
    now = datetime.now(UTC)
    send(client, [event(f"o{i}", "page_view", now - timedelta(days=2)) for i in range(30)]
             + [event(f"k{i}", "page_view", now) for i in range(5)])
    start = now_millis()
    runs = run_together(*(lambda h=h: run_if_due(store, DAYS, f"worker-{h}", clock=lambda: start, batch=7)
                          for h in range(4)))
    assert sorted(runs, key=lambda r: r is None) == [30, None, None, None]
    assert len(stored_event_ids(client)) == 5
    # not again the same day, by anyone; due again a day after the run started
    assert run_if_due(store, DAYS, "worker-0", clock=lambda: start + RUN_EVERY_MS - 1) is None
    assert run_if_due(store, DAYS, "worker-1", clock=lambda: start + RUN_EVERY_MS) == 5  # a day older now


def test_a_lease_left_by_a_dead_holder_runs_out(app):
    store = app.extensions["metrics_store"]
    start = now_millis()
    assert store.claim_job("event_retention", "dead", start, LEASE_MS)  # taken, never finished
    assert run_if_due(store, DAYS, "alive", clock=lambda: start + LEASE_MS - 1) is None
    assert not store.renew_job("event_retention", "alive", start, LEASE_MS)
    assert run_if_due(store, DAYS, "alive", clock=lambda: start + LEASE_MS) == 0
    assert not store.renew_job("event_retention", "dead", start + LEASE_MS, LEASE_MS)  # its lease is gone
