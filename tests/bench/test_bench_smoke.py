"""`make bench` end to end in miniature: wrk against real servers under gunicorn for a second or two,
so the harness (Lua scripts, parsing, CPU accounting) cannot rot unnoticed between benchmark runs."""
from __future__ import annotations

import os

import pytest
import requests

from bench.services import ADMIN_TOKEN, INGEST_KEY, Servers
from bench.settings import Settings
from bench.wrk import SATURATED, Target, compare, ratio, wrk_path

pytestmark = [pytest.mark.slow, pytest.mark.integration]
MB = 1024 * 1024
SETTINGS = Settings(seconds=1, rounds=1, connections=8)


@pytest.fixture(autouse=True)
def wrk_installed():
    try:
        wrk_path()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def test_load_on_the_ceiling_is_measured_with_the_generators_cpu_and_the_servers_memory(tmp_path):
    memory = []
    with Servers(tmp_path, memory, "smoke") as servers:
        ceiling = servers.gunicorn("ceiling")
        figures = compare([Target("page", ceiling.url, "page.lua", {}, [ceiling]),
                           Target("assign", ceiling.url, "assign.lua", {}, [ceiling])], SETTINGS, warmup=0)
    for figure in figures.values():
        assert figure.requests > 100
        assert figure.errors == 0
        assert 0 < figure.generator_share < SATURATED
        assert figure.server_cores > 0
        assert 0 < figure.p50_ms <= figure.p99_ms
        assert figure.rate == pytest.approx(figure.requests / sum(r.seconds for r in figure.rounds))
    assert ratio(figures["assign"], figures["page"]) > 0
    [ceiling_memory] = memory
    assert len(ceiling_memory.resident) == 3  # gunicorn's master and its two workers
    assert all(10 * MB < rss < 1000 * MB for rss in ceiling_memory.resident)


def settled_stats(url: str) -> dict:
    """/stats once the requests still in flight when wrk stopped have landed (two reads agree): a
    batch stored between the read of the events and the read of the visitors would skew them."""
    def read():
        return requests.get(f"{url}/stats", params={"experiment": "landing"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30).json()

    previous, current = read(), read()
    while current != previous:
        previous, current = current, read()
    return current


def test_every_request_carries_a_new_event_of_a_new_visitor(tmp_path):
    with Servers(tmp_path, [], "smoke") as servers:
        metrics = servers.gunicorn("metrics_service")
        single = Target("single", metrics.url, "events.lua", {"key": INGEST_KEY}, [metrics])
        batch = Target("batch", metrics.url, "batch.lua", {"key": INGEST_KEY, "size": "50"}, [metrics], 2, 50)
        two_rounds = Settings(seconds=1, rounds=2, connections=8)  # each run must make ids of its own
        figures = compare([single, batch], two_rounds, warmup=0)
        stats = settled_stats(metrics.url)
    sent = figures["single"].requests + figures["batch"].requests * 50
    assert figures["single"].errors == figures["batch"].errors == 0
    # wrk stops counting at the deadline: the requests in flight then are answered but not counted
    assert sent <= stats["total_events"] <= sent + 2 * (8 + 2 * 50)
    assert stats["unique_visitors"] == stats["total_events"]


def test_failed_requests_are_counted_and_withhold_the_ratio(tmp_path):
    with Servers(tmp_path, [], "smoke") as servers:
        metrics = servers.gunicorn("metrics_service")
        figures = compare([Target("wrong path", metrics.url, "page.lua", {}, [metrics]),
                           Target("fine", metrics.url, "assign.lua", {}, [metrics])], SETTINGS, warmup=0)
    wrong = figures["wrong path"]
    assert wrong.errors == wrong.requests > 0
    assert wrong.first_error.startswith("404 ")
    assert ratio(wrong, figures["fine"]) is None


def test_one_and_two_instances_behind_nginx_share_one_postgresql_database(tmp_path):
    """The scaling figure in miniature: both configurations answer through the proxy, every
    instance pinned to a core, and the rows and PostgreSQL CPU per event are counted."""
    from bench.scaling import INSTANCES, scaling
    from harness.proxy import nginx_path

    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgresql") or nginx_path() is None:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL) and nginx")
    memory = []
    measured = scaling(Settings(seconds=2, rounds=1, connections=8, database_url=base), tmp_path, memory)
    for n in INSTANCES:
        for kind in ("page", "ingest"):
            figure = measured.figures[f"{kind} {n}"]
            assert figure.requests > 0 and figure.errors == 0
    assert measured.events > 0
    assert 1 <= measured.rows_per_event < 50  # the event itself and its aggregate rows
    assert measured.postgres_ms_per_event > 0 and measured.postgres_ms_per_batched_event > 0
    assert len(memory) == 3 * sum(INSTANCES)
    assert all(len(m.resident) == 2 for m in memory)  # one worker per instance beside its master
