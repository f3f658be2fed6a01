"""The landing service's outbox against a real metrics_service: what it deletes, what it keeps."""
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from landing.outbox import EVENTS
from metrics_service.store import events
from tests.helpers import make_landing


def event(**extra):
    return {"event_id": str(uuid.uuid4()), "visitor_id": "v1", "variant": "A", "event_type": "cta_click", **extra}


def stored(metrics_server) -> dict[str, int]:
    with metrics_server.app.extensions["metrics_store"].engine.connect() as conn:
        return dict(conn.execute(select(events.c.event_id, events.c.ts)).all())


class DuringPost(requests.Session):
    """A session that runs `action` once, after metrics_service has answered a POST and before the
    outbox acts on the answer; it sends the headers given (the outbox session's: its ingest key)."""

    def __init__(self, action, headers=()):
        super().__init__()
        self.action = action
        self.headers.update(headers)

    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        action, self.action = self.action, None
        if action:
            action()
        return response


def test_a_sender_deletes_only_the_events_it_delivered(tmp_path, ab_server, metrics_server):
    """While one sender waits for metrics_service, its events are delivered by another instance and the
    table empties; an event queued then must survive the first sender's clean-up (a reused row id did not)."""
    app = make_landing(tmp_path, ab_server.url, metrics_server.url)
    outbox = app.extensions["outbox"]
    first, later = event(), event()
    outbox.enqueue([first])

    def elsewhere():
        with outbox.engine.begin() as conn:  # delivered and deleted by another sender meanwhile
            conn.exec_driver_sql("DELETE FROM outbox")
        outbox.enqueue([later])

    outbox.destinations[EVENTS].session = DuringPost(elsewhere, outbox.destinations[EVENTS].session.headers)
    assert outbox.flush_once() == 1
    assert outbox.pending() == 1
    outbox.flush()
    assert {first["event_id"], later["event_id"]} <= set(stored(metrics_server))


def test_events_metrics_rejects_are_kept_and_logged_and_the_rest_delivered(tmp_path, ab_server, metrics_server,
                                                                           caplog):
    """An event older than metrics_service accepts (an outbox down for over a year) is set aside with the
    reason, loudly; it does not block the events queued after it."""
    app = make_landing(tmp_path, ab_server.url, metrics_server.url)
    outbox = app.extensions["outbox"]
    too_old = event(timestamp=(datetime.now(UTC) - timedelta(days=400)).isoformat())
    fine = [event(timestamp=datetime.now(UTC).isoformat()) for _ in range(3)]
    outbox.enqueue([too_old, *fine])
    with caplog.at_level(logging.ERROR, logger="landing.outbox"):
        assert outbox.flush() == 4
    assert set(stored(metrics_server)) == {e["event_id"] for e in fine}
    assert (outbox.pending(), outbox.rejected()) == (0, 1)
    assert any("rejected 1 queued event" in r.getMessage() and "year" in r.getMessage() for r in caplog.records)
    with outbox.engine.connect() as conn:
        [(event_id, reason)] = conn.exec_driver_sql("SELECT event_id, rejected FROM outbox").all()
    assert event_id == too_old["event_id"] and "timestamp" in reason


class Answering(requests.Session):
    """A session that answers every POST itself, with `status` and the JSON `body`."""

    def __init__(self, status, body):
        super().__init__()
        self.status, self.body = status, body

    def post(self, url, *args, **kwargs):
        response = requests.Response()
        response.status_code, response.url, response._content = self.status, url, json.dumps(self.body).encode()
        return response


def test_a_batch_rejected_without_per_event_reasons_stays_queued(tmp_path, ab_server, closed_port_url, caplog):
    app = make_landing(tmp_path, ab_server.url, closed_port_url)
    outbox = app.extensions["outbox"]
    outbox.enqueue([event(), event()])
    outbox.destinations[EVENTS].session = Answering(
        400, {"error": "invalid_json", "errors": [{"index": None, "message": "bad body"}]})
    with caplog.at_level(logging.ERROR, logger="landing.outbox"), pytest.raises(requests.HTTPError):
        outbox.flush_once()
    assert (outbox.pending(), outbox.rejected()) == (2, 0)
    assert any("rejected a batch" in r.getMessage() for r in caplog.records)


def test_page_events_carry_the_time_of_the_visit(tmp_path, ab_server, metrics_server, closed_port_url):
    """Recorded while metrics_service is unreachable and delivered a second later: stored with the
    time of the visit, not of the delivery."""
    app = make_landing(tmp_path, ab_server.url, closed_port_url)
    client = app.test_client()
    before = datetime.now(UTC)
    assert client.get("/").status_code == 200
    after = datetime.now(UTC)
    time.sleep(1)
    outbox = app.extensions["outbox"]
    outbox.destinations[EVENTS].url = metrics_server.url + "/events"
    outbox.flush()
    [ts] = stored(metrics_server).values()
    assert before.timestamp() - 0.001 <= ts / 1000 <= after.timestamp()
