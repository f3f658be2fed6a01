"""Rate limits kept in the service's database hold across processes, on both backends."""
import time

import pytest
from limits import parse
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from sqlalchemy import func, select

from core.ratelimit import DatabaseStorage, RateLimited, RateLimits, hits
from tests.helpers import run_together


@pytest.fixture
def storages(db_url):
    """Two storages on one database, each with its own engine: as two gunicorn workers."""
    made = [DatabaseStorage(db_url) for _ in range(2)]
    yield made
    for storage in made:
        storage.engine.dispose()


def test_a_limit_holds_across_processes_hit_at_once(storages):
    rule = parse("25/minute")
    limiters = [MovingWindowRateLimiter(storage) for storage in storages]
    calls = [lambda i=i: sum(limiters[i % 2].hit(rule, "visitor", "v1") for _ in range(10)) for i in range(8)]
    assert sum(run_together(*calls)) == 25
    assert not limiters[0].hit(rule, "visitor", "v1")
    assert limiters[1].hit(rule, "visitor", "v2")  # another key has its own window
    stats = limiters[0].get_window_stats(rule, "visitor", "v1")
    assert stats.remaining == 0
    assert time.time() < stats.reset_time <= time.time() + 60


def test_the_window_moves(storages):
    rule = parse("3 per 2 seconds")
    first, second = (MovingWindowRateLimiter(storage) for storage in storages)
    assert [first.hit(rule, "k"), second.hit(rule, "k"), first.hit(rule, "k")] == [True] * 3
    assert not second.hit(rule, "k")
    time.sleep(2.1)
    assert second.hit(rule, "k")
    assert first.get_window_stats(rule, "k").remaining == 2


def test_fixed_window_counters_clear_and_reset(storages):
    rule = parse("2/minute")
    first, second = (FixedWindowRateLimiter(storage) for storage in storages)
    assert [first.hit(rule, "k"), second.hit(rule, "k"), first.hit(rule, "k")] == [True, True, False]
    assert storages[1].get(rule.key_for("k")) == 3
    assert time.time() < storages[0].get_expiry(rule.key_for("k")) <= time.time() + 60
    storages[0].clear(rule.key_for("k"))
    assert second.hit(rule, "k")
    assert storages[0].reset() >= 1
    assert storages[0].check()


def test_passed_windows_are_deleted(storages, monkeypatch):
    rule = parse("5 per 1 second")
    limiter = MovingWindowRateLimiter(storages[0])
    for key in ("gone1", "gone2"):
        limiter.hit(rule, key)
    time.sleep(1.1)
    monkeypatch.setattr(storages[0], "_next_purge", 0.0)
    limiter.hit(rule, "fresh")
    with storages[0].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(hits)).scalar_one() == 1


def test_rate_limits_answer_when_a_limit_is_used_up(db_url):
    limits = RateLimits({"visitor": "2/minute", "ip": ""}, db_url)
    limits.hit("visitor", "v1")
    limits.hit("visitor", "v1")
    with pytest.raises(RateLimited) as raised:
        limits.hit("visitor", "v1")
    assert 1 <= raised.value.retry_after <= 60
    for _ in range(5):
        limits.hit("ip", "127.0.0.1")  # an empty rule limits nothing
    limits.storage.engine.dispose()
