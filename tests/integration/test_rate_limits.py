"""Rate limits hold for the whole service, not per worker: the landing service under gunicorn (two
workers) accepts exactly the limit from one visitor, and two instances sharing a Redis server accept
exactly the limit between them."""
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.processes import base_env, flask_service, redis_server

pytestmark = pytest.mark.integration

LIMIT = 60


@pytest.fixture
def redis_url(tmp_path):
    """A Redis server of the test's own. Locally the test skips without Debian's redis-server; in CI
    (CI=true) that is a failure."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing: CI must run the shared rate limit tests")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with redis_server(tmp_path) as url:
        yield url


def start_landing(data_dir, closed_port_url, **env):
    data_dir.mkdir(exist_ok=True)
    return flask_service("landing", data_dir, base_env(
        data_dir, AB_SERVICE_URL=closed_port_url, METRICS_SERVICE_URL=closed_port_url,
        RATE_LIMIT_VISITOR=f"{LIMIT}/minute", **env)).start()


def clicks(urls: list[str], visitor: str, count: int) -> list[int]:
    """`count` clicks from one visitor, each on a new connection (so gunicorn hands them to either
    worker), spread over the given instances, from eight threads at once."""
    def click(i):
        response = requests.post(f"{urls[i % len(urls)]}/track", json={"event_type": "cta_click"},
                                 cookies={"ll_vid": visitor}, headers={"Connection": "close"}, timeout=10)
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(click, range(count)))


def test_the_visitor_limit_holds_across_the_workers_of_an_instance(tmp_path, closed_port_url):
    landing = start_landing(tmp_path, closed_port_url)
    try:
        statuses = clicks([landing.url], str(uuid.uuid4()), 2 * LIMIT + 30)
        assert statuses.count(202) == LIMIT
        assert statuses.count(429) == LIMIT + 30
        assert clicks([landing.url], str(uuid.uuid4()), 5) == [202] * 5  # another visitor is not held back
    finally:
        landing.stop()


def test_instances_sharing_redis_share_the_limit(tmp_path, closed_port_url, redis_url):
    instances = []
    try:
        for name in ("one", "two"):
            instances.append(start_landing(tmp_path / name, closed_port_url, RATE_LIMIT_STORAGE_URI=redis_url))
        statuses = clicks([i.url for i in instances], str(uuid.uuid4()), 2 * LIMIT + 30)
        assert statuses.count(202) == LIMIT
        assert statuses.count(429) == LIMIT + 30
    finally:
        for instance in instances:
            instance.stop()


def test_an_unreachable_redis_lets_visitors_through(tmp_path, closed_port_url):
    landing = start_landing(tmp_path, closed_port_url, RATE_LIMIT_STORAGE_URI=closed_port_url.replace("http", "redis"))
    try:
        assert clicks([landing.url], str(uuid.uuid4()), 10) == [202] * 10
    finally:
        landing.stop()
