"""Scheduled transitions under gunicorn (two workers each) with two instances on one database, on both
backends, when instances are killed (SIGKILL, master and workers) around the due times and started
again: the experiment starts and stops once each and the flag changes once, each carried out by the
actor `scheduler`, within 60 s of its time."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from harness.processes import ADMIN_TOKEN, base_env, flask_service, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VARIANTS = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ab_service.db'}"
    return request.getfixturevalue("pg_schema_url")()


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def test_each_scheduled_transition_happens_once_through_crashes_and_restarts(tmp_path, database_url,
                                                                              closed_port_url):
    def instance(name: str):
        data = tmp_path / name
        data.mkdir(exist_ok=True)
        return flask_service("ab_service", data, base_env(
            data, DATABASE_URL=database_url, JOBS_INTERVAL_SECONDS="0.5", METRICS_SERVICE_URL=closed_port_url))

    one, two = instance("one").start(), instance("two").start()
    try:
        start = datetime.now(UTC) + timedelta(seconds=8)
        stop = start + timedelta(seconds=6)
        created = requests.post(one.url + "/experiments", headers=ADMIN, timeout=10, json={
            "key": "launch", "variants": VARIANTS, "start_at": start.isoformat(), "stop_at": stop.isoformat()})
        assert created.status_code == 201, created.text
        scheduled = requests.post(one.url + "/flags/hero_headline/schedule", headers=ADMIN, timeout=10,
                                  json={"at": stop.isoformat(), "value": "Launch week"})
        assert scheduled.status_code == 201, scheduled.text

        def status(service) -> str:
            return requests.get(service.url + "/experiments/launch", timeout=5).json()["status"]

        sleep_until(start - timedelta(milliseconds=200))
        one.kill()  # just before the start is due
        wait_for(lambda: status(two) == "running", timeout=60, interval=0.2)
        assert datetime.now(UTC) - start < timedelta(seconds=60)
        one = instance("one").start()

        sleep_until(stop)
        two.kill()  # as the stop and the flag change fall due: perhaps while carrying them out
        wait_for(lambda: status(one) == "stopped", timeout=60, interval=0.2)
        wait_for(lambda: requests.get(one.url + "/flags/hero_headline", timeout=5).json()["value"] == "Launch week",
                 timeout=60, interval=0.2)
        assert datetime.now(UTC) - stop < timedelta(seconds=60)
        two = instance("two").start()
        time.sleep(2)  # a few more ticks of every scheduler

        entries = requests.get(two.url + "/audit", headers=ADMIN, timeout=10).json()["entries"]
        by_scheduler = [(e["key"], e["action"], e["new"].get("status", e["new"].get("value")))
                        for e in reversed(entries) if e["actor"] == "scheduler"]
        assert sorted(by_scheduler) == [("hero_headline", "update", "Launch week"), ("launch", "update", "running"),
                                        ("launch", "update", "stopped")]
        assert requests.get(two.url + "/experiments/launch", timeout=5).json()["start_at"] is None
    finally:
        one.stop()
        two.stop()
