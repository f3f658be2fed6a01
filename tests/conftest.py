"""Shared fixtures: each Flask app built on a temporary database, with its test client.

Storage and API tests run on both backends: SQLite, and PostgreSQL at TEST_DATABASE_URL
(each test in a schema of its own). Without TEST_DATABASE_URL the PostgreSQL cases skip,
except in CI (CI=true), where a missing server is a failure.
"""
from __future__ import annotations

import os

import pytest

from harness.postgres import Schemas
from tests.helpers import ADMIN_TOKEN, INGEST_HEADERS, INGEST_KEY, LiveServer, flask_app, make_landing


def postgres_base_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("TEST_DATABASE_URL is not set: CI must run the PostgreSQL tests")
        pytest.skip("PostgreSQL tests skipped: set TEST_DATABASE_URL=postgresql+psycopg://user@host/db to run them")
    return url


@pytest.fixture
def pg_schema_url():
    """A factory of URLs that each point at a fresh schema of the test PostgreSQL database."""
    schemas = Schemas(postgres_base_url())
    try:
        yield schemas.new_url
    finally:
        schemas.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param



@pytest.fixture
def db_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_schema_url")()


@pytest.fixture
def ab_app(db_url):
    with flask_app("ab_service", DATABASE_URL=db_url, ADMIN_TOKEN=ADMIN_TOKEN) as app:
        yield app


@pytest.fixture
def ab_client(ab_app):
    return ab_app.test_client()


@pytest.fixture
def metrics_app(db_url):
    with flask_app("metrics_service", DATABASE_URL=db_url, INGEST_KEY=INGEST_KEY) as app:
        yield app


@pytest.fixture
def metrics_client(metrics_app):
    """A client that sends the ingest key, as the landing service does."""
    client = metrics_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = INGEST_HEADERS["Authorization"]
    return client


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def ab_server(ab_app):
    server = LiveServer(ab_app)
    yield server
    server.stop()


@pytest.fixture
def metrics_server(tmp_path):
    with flask_app("metrics_service", DATABASE_URL=f"sqlite:///{tmp_path / 'metrics.db'}",
                   INGEST_KEY=INGEST_KEY) as app:
        server = LiveServer(app)
        yield server
        server.stop()


@pytest.fixture
def closed_port_url():
    """A URL on which nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def landing_app(tmp_path, ab_server, metrics_server):
    return make_landing(tmp_path, ab_server.url, metrics_server.url)


@pytest.fixture
def landing_client(landing_app):
    return landing_app.test_client()


# Under pytest-xdist (`make test`), the unit of work a process takes: a whole module where the tests
# share services started once per module (a stack of processes, gunicorn, nginx), all the browser
# tests together (one Chromium and one stack at a time), any other test on its own.
SHARED_BY_MODULE = ("tests/integration/", "tests/bench/")
ONE_AT_A_TIME = {"tests/browser/": "browser"}


def work_unit(nodeid: str) -> str:
    path = nodeid.partition("::")[0]
    for folder, unit in ONE_AT_A_TIME.items():
        if path.startswith(folder):
            return unit
    return path if path.startswith(SHARED_BY_MODULE) else nodeid


def start_rank(unit: str) -> int:
    """Which units start first: the browser tests (the longest unit, in one process), then the modules
    that start services (each takes seconds to minutes, the one-test memory and export modules
    included), then the single tests, which fill the processes to the end."""
    if unit in ONE_AT_A_TIME.values():
        return 0
    return 1 if unit.startswith(SHARED_BY_MODULE) else 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the queue is complete when the first unit is handed out
                units = sorted(self.workqueue.items(), key=lambda item: start_rank(item[0]))  # stable
                self.workqueue.clear()
                self.workqueue.update(units)
                self.ordered = True
            super()._assign_work_unit(node)

    return ByWorkUnit(config, log)
