"""Webhooks on both backends: admin-managed, the secret answered once; alerts raised in the transaction
of a status change or by a readout check against a metrics_service stand-in, once per condition,
delivered to a receiver signed, retried with backoff while it fails, with a stable idempotency key.
The sender and the check are called with the time they run at."""
import json
import time

import pytest
from flask import Flask, request

from ab_service.alerts import ReadoutCheck, Sender
from core.db import now_millis
from core.http import make_session
from core.webhooks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from tests.helpers import LiveServer

VARIANTS = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]
SECRET = "whsec_receiver_test_secret"


class Receiver:
    """A webhook endpoint that keeps what it is sent and answers with the status it is told."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        app = Flask("receiver")

        @app.post("/hook")
        def hook():
            self.received.append({"body": request.get_data(), "headers": dict(request.headers),
                                  "args": request.args.to_dict()})
            return "", self.status

        self.server = LiveServer(app)
        self.url = self.server.url + "/hook"


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.stop()


def add_webhook(client, headers, url, events, secret=SECRET):
    response = client.post("/webhooks", headers=headers, json={"url": url, "events": events, "secret": secret})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sender(app) -> Sender:
    return Sender(app.extensions["ab_store"], make_session(retries=0), timeout=5, max_backoff=3600)


def test_webhooks_are_managed_by_admins_and_the_secret_is_shown_once(ab_client, admin_headers):
    body = {"url": "https://hooks.example.com/landing", "events": ["srm.detected", "no_data"]}
    assert ab_client.post("/webhooks", json=body).status_code == 401
    assert ab_client.get("/webhooks").status_code == 401
    created = ab_client.post("/webhooks", headers=admin_headers, json=body).get_json()
    assert created["secret"].startswith("whsec_") and created["events"] == body["events"]
    [listed] = ab_client.get("/webhooks", headers=admin_headers).get_json()["webhooks"]
    assert "secret" not in listed and listed["id"] == created["id"] and listed["url"] == body["url"]
    assert ab_client.delete(f"/webhooks/{created['id']}").status_code == 401
    assert ab_client.delete(f"/webhooks/{created['id']}", headers=admin_headers).get_json() == {
        "deleted": created["id"]}
    assert ab_client.delete(f"/webhooks/{created['id']}", headers=admin_headers).status_code == 404
    assert ab_client.get("/webhooks", headers=admin_headers).get_json()["webhooks"] == []


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "events": ["no_data"]}, "url"),
    ({"url": "not a url", "events": ["no_data"]}, "url"),
    ({"url": "https://example.com/x", "events": []}, "events"),
    ({"url": "https://example.com/x", "events": ["deploy.finished"]}, "events.0"),
    ({"url": "https://example.com/x", "events": ["no_data", "no_data"]}, "events"),
    ({"url": "https://example.com/x", "events": ["no_data"], "secret": "short"}, "secret"),
])
def test_a_webhook_that_cannot_work_is_refused(ab_client, admin_headers, body, field):
    response = ab_client.post("/webhooks", headers=admin_headers, json=body)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_status_changes_are_delivered_signed_to_the_subscribed_webhooks(ab_app, ab_client, admin_headers, receiver):
    add_webhook(ab_client, admin_headers, receiver.url, ["experiment.started", "experiment.stopped"])
    add_webhook(ab_client, admin_headers, receiver.url + "?only=stops", ["experiment.stopped"], secret=SECRET + "2")
    ab_client.post("/experiments", headers=admin_headers, json={"key": "hero", "variants": VARIANTS})
    ab_client.patch("/experiments/hero", headers=admin_headers, json={"status": "running"})
    ab_client.patch("/experiments/hero", headers=admin_headers, json={"status": "stopped"})

    assert sender(ab_app).run(now_millis()) == 3
    assert sender(ab_app).run(now_millis()) == 0  # each delivered once
    events = []
    for delivery in receiver.received:
        body, headers = delivery["body"], delivery["headers"]
        secret = SECRET + "2" if delivery["args"] else SECRET
        payload = json.loads(body)
        assert verify(secret, body, headers[SIGNATURE_HEADER], time.time())
        assert headers[IDEMPOTENCY_HEADER] == payload["id"]
        assert headers["Landing-Lab-Event"] == payload["event"]
        events.append((payload["event"], payload["experiment"], payload["data"]["actor"]))
    assert sorted(events) == [("experiment.started", "hero", "admin"), ("experiment.stopped", "hero", "admin"),
                              ("experiment.stopped", "hero", "admin")]
    counts = {w["url"]: (w["delivered"], w["pending"])
              for w in ab_client.get("/webhooks", headers=admin_headers).get_json()["webhooks"]}
    assert counts == {receiver.url: (2, 0), receiver.url + "?only=stops": (1, 0)}


def test_a_failing_receiver_gets_the_same_alert_again_after_a_growing_wait(ab_app, ab_client, admin_headers,
                                                                          receiver):
    add_webhook(ab_client, admin_headers, receiver.url, ["experiment.started"])
    ab_client.post("/experiments", headers=admin_headers, json={"key": "hero", "variants": VARIANTS,
                                                                "status": "running"})
    receiver.status = 503
    now = now_millis()
    assert sender(ab_app).run(now) == 0
    assert sender(ab_app).run(now + 4_000) == 0 and len(receiver.received) == 1  # waits 5 s
    assert sender(ab_app).run(now + 5_000) == 0 and len(receiver.received) == 2
    assert sender(ab_app).run(now + 14_000) == 0 and len(receiver.received) == 2  # then 10 s
    receiver.status = 200
    assert sender(ab_app).run(now + 15_000) == 1
    keys = {d["headers"][IDEMPOTENCY_HEADER] for d in receiver.received}
    assert len(receiver.received) == 3 and len(keys) == 1
    [webhook] = ab_client.get("/webhooks", headers=admin_headers).get_json()["webhooks"]
    assert (webhook["delivered"], webhook["pending"]) == (1, 0)


class Metrics:
    """A metrics_service stand-in: the readout and summary of each experiment, as the test sets them."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self.recent: dict[str, dict] = {}  # answers with `since` (the no_data window)
        self.summary: dict[str, dict] = {}
        app = Flask("metrics")

        @app.get("/experiments/<key>/results")
        def results(key):
            answer = (self.recent if "since" in request.args else self.results).get(key)
            return answer if answer is not None else {"variants": [], "srm": {"mismatch": False}}

        @app.get("/experiments/<key>/summary")
        def summary(key):
            return self.summary[key] if key in self.summary else ({"error": "not_found"}, 404)

        self.server = LiveServer(app)


@pytest.fixture
def metrics():
    metrics = Metrics()
    yield metrics
    metrics.server.stop()


def test_readout_alerts_are_raised_once_per_condition_and_no_data_again_after_data(
        ab_app, ab_client, admin_headers, receiver, metrics):
    add_webhook(ab_client, admin_headers, receiver.url,
                ["srm.detected", "significance.reached", "guardrail.breached", "no_data"])
    store = ab_app.extensions["ab_store"]
    check = ReadoutCheck(store, make_session(retries=0), metrics.server.url, "token", no_data_hours=1)
    ab_client.patch("/experiments/landing", headers=admin_headers, json={"status": "stopped"})
    ab_client.post("/experiments", headers=admin_headers, json={"key": "hero", "variants": VARIANTS,
                                                                "status": "running"})
    exposed = {"variants": [{"variant": "A", "visitors": 40}, {"variant": "B", "visitors": 10}]}
    metrics.results["hero"] = {**exposed, "metric": "conversion", "verdict_code": "significant",
                               "verdict_variant": "B", "srm": {"p_value": 1e-6, "mismatch": True}}
    metrics.summary["hero"] = {"guardrails": [{"metric": "bounce", "breached": True}]}
    now = now_millis()
    assert check.run(now) == 3
    assert check.run(now) == 0  # the same conditions: nothing new
    hour = 3600 * 1000
    metrics.recent["hero"] = {"variants": []}
    assert check.run(now + hour) == 1  # no exposures for an hour
    assert check.run(now + hour + 1) == 0
    metrics.recent["hero"] = exposed
    assert check.run(now + 2 * hour) == 0
    metrics.recent["hero"] = {"variants": []}
    assert check.run(now + 3 * hour) == 1  # silent again: a new no_data alert

    assert sender(ab_app).run(now_millis()) == 5
    payloads = [json.loads(d["body"]) for d in receiver.received]
    assert sorted(p["event"] for p in payloads) == ["guardrail.breached", "no_data", "no_data", "significance.reached",
                                                    "srm.detected"]
    assert len({p["id"] for p in payloads}) == 5
    assert all(p["experiment"] == "hero" for p in payloads)


def test_the_readout_check_survives_metrics_service_being_down(ab_app, closed_port_url):
    check = ReadoutCheck(ab_app.extensions["ab_store"], make_session(retries=0), closed_port_url, "", 24)
    assert check.run(now_millis()) == 0
