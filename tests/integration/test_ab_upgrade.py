"""ab_service under gunicorn with two workers upgrading an old installation: both workers migrate and
seed at start, in turns, so every start boots and each upgrade and seed row happens once."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.postgres import fresh_schema
from harness.processes import ADMIN_TOKEN, base_env, flask_service
from tests.helpers import old_ab_installation

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def old(folder, database_url: str | None = None) -> str:
    """An old installation in folder (Alembic runs in one thread at a time); its database URL."""
    folder.mkdir()
    database_url = database_url or f"sqlite:///{folder / 'ab_service.db'}"
    old_ab_installation(database_url)
    return database_url


def boot(folder, database_url: str) -> str | None:
    """Start ab_service on the old installation; None when both workers booted and the content is upgraded
    once, else what went wrong."""
    service = flask_service("ab_service", folder, base_env(folder, DATABASE_URL=database_url))
    try:
        problem = service.boot_problem()
        if problem:
            return problem[-3000:]
        flags = requests.get(service.url + "/flags", timeout=10).json()["flags"]
        landing = requests.get(service.url + "/experiments/landing", timeout=10).json()
        audit = requests.get(service.url + "/audit", headers=ADMIN, timeout=10).json()["entries"]
        problems = []
        if len(flags) != 9:
            problems.append(f"flags: {[f['key'] for f in flags]}")
        if landing["variants"][1]["overrides"].get("layout") != "split":
            problems.append(f"landing: {landing['variants']}")
        if len([e for e in audit if e["actor"] == "migration"]) != 2:
            problems.append(f"audit: {audit}")
        return "; ".join(problems) or None
    finally:
        service.stop()


def test_two_workers_upgrade_an_old_sqlite_installation_once(tmp_path):
    urls = [old(tmp_path / f"start{n}") for n in range(9)]
    with ThreadPoolExecutor(3) as pool:
        failures = [f for f in pool.map(lambda n: boot(tmp_path / f"start{n}", urls[n]), range(9)) if f is not None]
    assert not failures, f"{len(failures)} of 9 starts failed; the first:\n{failures[0]}"


def test_two_workers_upgrade_an_old_postgresql_installation_once(tmp_path):
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail("TEST_DATABASE_URL is not set: CI must run the PostgreSQL tests")
        pytest.skip("set TEST_DATABASE_URL to run the PostgreSQL case")
    for n in range(3):
        with fresh_schema(base) as url:
            failure = boot(tmp_path / f"start{n}", old(tmp_path / f"start{n}", url))
        assert failure is None, failure
