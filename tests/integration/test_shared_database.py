"""Two metrics_service instances (gunicorn, two workers each) on one PostgreSQL database, as behind a
load balancer: overlapping batches sent to both in different orders are all answered 202, each event
counts once, and the aggregates kept at ingest equal a rebuild from the raw events."""
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from core.db import make_engine
from harness.processes import INGEST_KEY, base_env, flask_service
from metrics_service.store import MetricsStore
from tests.helpers import assert_matches_rebuild

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

EXPERIMENTS = ("landing", "hero", "pricing")


def overlapping_events(rng: random.Random, count: int, visitors: int) -> list[dict]:
    now = datetime.now(UTC)
    return [{
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "visitor_id": f"v{rng.randrange(visitors)}",
        "experiment": rng.choice(EXPERIMENTS),
        "variant": rng.choice("AB"),
        "event_type": rng.choice(["page_view", "page_view", "cta_click", "form_submit"]),
        "timestamp": (now - timedelta(minutes=rng.randint(0, 60 * 3))).isoformat(),
    } for _ in range(count)]


@pytest.fixture
def instances(tmp_path, pg_schema_url):
    url = pg_schema_url()
    started = []
    try:
        for name in ("one", "two"):
            data = tmp_path / name
            data.mkdir()
            started.append(flask_service("metrics_service", data, base_env(data, DATABASE_URL=url)).start())
        yield url, started
    finally:
        for service in started:
            service.stop()


def test_overlapping_batches_in_different_orders_all_succeed_and_count_once(instances):
    url, (one, two) = instances
    rng = random.Random(6)
    sent = overlapping_events(rng, 4000, visitors=300)
    jobs = []
    for service in (one, two):  # every event goes to both instances, in batches cut in a different order
        for _ in range(2):
            order = rng.sample(sent, len(sent))
            jobs += [(service.url, order[i:i + 200]) for i in range(0, len(order), 200)]
    rng.shuffle(jobs)

    def post(job):
        target, batch = job
        response = requests.post(f"{target}/events", json=batch, timeout=60,
                                headers={"Authorization": f"Bearer {INGEST_KEY}"})
        return response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, jobs))
    failures = [answer for answer in answers if answer[0] != 202]
    assert not failures, f"{len(failures)} of {len(answers)} batches failed: {failures[:3]}"
    assert sum(body["accepted"] for _, body in answers) == len(sent)

    stats = requests.get(f"{one.url}/stats", timeout=10).json()
    assert stats["total_events"] == len(sent)
    for experiment in EXPERIMENTS:
        mine = [e for e in sent if e["experiment"] == experiment]
        body = requests.get(f"{two.url}/stats", params={"experiment": experiment}, timeout=10).json()
        assert body["total_events"] == len(mine)
        assert body["unique_visitors"] == len({(e["variant"], e["visitor_id"]) for e in mine})

    store = MetricsStore(make_engine(url))
    try:
        assert_matches_rebuild(store)
    finally:
        store.engine.dispose()
