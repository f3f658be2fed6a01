"""Webhook delivery under gunicorn (two workers) when the sender dies mid-delivery: a receiver in the
test holds the first delivery open while ab_service is killed (SIGKILL, master and workers), then
started again. Every alert arrives, each with a valid signature; the one whose answer was lost arrives
again with the same idempotency key, so the receiver keeps each alert once; nothing is raised twice."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from flask import Flask, request

from core.webhooks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from harness.processes import ADMIN_TOKEN, base_env, flask_service, wait_for
from tests.helpers import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VARIANTS = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]
SECRET = "whsec_integration_receiver_secret"
KEYS = ("alpha", "beta", "gamma")


class Receiver:
    """Keeps every delivery, and each alert once by its idempotency key; holds the first delivery
    open until released."""

    def __init__(self):
        self.deliveries: list[tuple[str, bytes, bool]] = []  # (idempotency key, body, signature valid)
        self.kept: dict[str, dict] = {}
        self.first_arrived, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/hook")
        def hook():
            body = request.get_data()
            key = request.headers[IDEMPOTENCY_HEADER]
            valid = verify(SECRET, body, request.headers[SIGNATURE_HEADER], time.time())
            with self.lock:
                first = not self.deliveries
                self.deliveries.append((key, body, valid))
            if first:
                self.first_arrived.set()
                self.release.wait(60)
            with self.lock:
                if valid:
                    self.kept.setdefault(key, json.loads(body))
            return "", 200

        self.server = LiveServer(app)
        self.url = self.server.url + "/hook"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ab_service.db'}"
    return request.getfixturevalue("pg_schema_url")()


def test_every_alert_arrives_verified_and_once_by_its_key_when_the_sender_is_killed(tmp_path, database_url,
                                                                                     closed_port_url):
    receiver = Receiver()
    env = base_env(tmp_path, DATABASE_URL=database_url, JOBS_INTERVAL_SECONDS="0.5", WEBHOOK_TIMEOUT_SECONDS="2",
                   METRICS_SERVICE_URL=closed_port_url)
    ab = flask_service("ab_service", tmp_path, env).start()
    try:
        webhook = requests.post(ab.url + "/webhooks", headers=ADMIN, timeout=10, json={
            "url": receiver.url, "events": ["experiment.started", "experiment.stopped"], "secret": SECRET})
        assert webhook.status_code == 201, webhook.text
        for key in KEYS:
            assert requests.post(ab.url + "/experiments", headers=ADMIN, timeout=10, json={
                "key": key, "variants": VARIANTS, "status": "running"}).status_code == 201
            assert requests.patch(ab.url + f"/experiments/{key}", headers=ADMIN, timeout=10,
                                  json={"status": "stopped"}).status_code == 200

        assert receiver.first_arrived.wait(60)
        ab.kill()  # the first delivery is under way: its answer is never read
        receiver.release.set()
        ab = flask_service("ab_service", tmp_path, env).start()

        held = receiver.deliveries[0][0]
        # the held one is sent again once its lease ends (it was processed, but its answer was lost)
        wait_for(lambda: len(receiver.kept) == 2 * len(KEYS) and [k for k, _, _ in receiver.deliveries].count(held) > 1,
                 timeout=90, interval=0.3)
        time.sleep(3)  # more ticks: nothing more is sent
        assert all(valid for _, _, valid in receiver.deliveries)
        events = sorted((alert["event"], alert["experiment"]) for alert in receiver.kept.values())
        assert events == sorted((event, key) for key in KEYS for event in ("experiment.started", "experiment.stopped"))
        assert all(key == alert["id"] for key, alert in receiver.kept.items())
        keys = [key for key, _, _ in receiver.deliveries]
        assert keys.count(held) == 2
        assert len(keys) == len(receiver.kept) + 1
        [listed] = requests.get(ab.url + "/webhooks", headers=ADMIN, timeout=10).json()["webhooks"]
        assert (listed["delivered"], listed["pending"]) == (2 * len(KEYS), 0)
    finally:
        ab.stop()
        receiver.server.stop()
