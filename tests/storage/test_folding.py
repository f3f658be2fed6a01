"""Ingest stores raw events and queues them; the aggregates follow in a fold (a background thread,
or a readout that settles first). Readouts stay exact and nothing queued is lost."""
import functools
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core.db import make_engine
from metrics_service import store as store_module
from metrics_service.store import EventFilter, FoldBacklog, MetricsStore, aggregates, events, fold_failed, fold_queue
from tests.helpers import assert_matches_rebuild, run_together, stored_form
from tests.storage.test_aggregates import define_metrics, random_batches

HOLD = 3600  # seconds: a folder that never wakes within a test


def queued(store: MetricsStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(fold_queue)).scalar_one()


def folded_events(store: MetricsStore) -> int:
    """Events in the aggregates, read without settling first."""
    table = aggregates.agg_events
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(table.c.events), 0))).scalar_one())


def clicks(count: int, prefix: str = "v", hours_ago: int = 1) -> list[dict]:
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    return [{"visitor_id": f"{prefix}{n}", "variant": "AB"[n % 2], "event_type": "cta_click", "timestamp": when}
            for n in range(count)]


@pytest.fixture
def store(db_url):
    """A store whose background folder does not run within the test (as if its process were busy)."""
    store = MetricsStore(make_engine(db_url)).start_folding(delay=HOLD, poll=HOLD)
    store.init_schema()
    yield store
    store.stop_folding()
    store.engine.dispose()


def test_ingest_queues_the_events_and_a_readout_folds_them_first(store):
    assert store.insert_events(*stored_form(clicks(30))) == 30
    assert (queued(store), folded_events(store)) == (30, 0)  # the ingest request did not fold
    assert store.count_events() == 30
    assert queued(store) == 0
    assert store.unique_visitors(EventFilter(experiment="landing"), "variant") == {"A": 15, "B": 15}


def test_excluded_and_repeated_events_are_not_queued(store):
    rows = clicks(5) + [{**clicks(1, "bot")[0], "bot": True}]
    rows[1]["event_id"] = rows[0]["event_id"] = "00000000-0000-4000-8000-000000000001"
    assert store.insert_events(*stored_form(rows)) == 5
    assert queued(store) == 4  # the bot's event is stored, left out of stats, so never folded
    assert store.count_events() == 4


def test_the_background_folder_folds_without_a_readout(db_url):
    store = MetricsStore(make_engine(db_url)).start_folding(delay=0, poll=0.05)
    store.init_schema()
    store.insert_events(*stored_form(clicks(50)))
    deadline = time.monotonic() + 30
    while (queued(store), folded_events(store)) != (0, 50):
        assert time.monotonic() < deadline, "the folder did not fold the queued events"
        time.sleep(0.02)
    store.stop_folding()
    store.engine.dispose()


def test_events_queued_by_a_process_that_never_folded_are_folded_by_another(store, db_url):
    store.insert_events(*stored_form(clicks(40)))
    other = MetricsStore(make_engine(db_url))  # another worker or instance, after the first one died
    assert other.count_events() == 40
    assert queued(store) == 0
    assert_matches_rebuild(other)
    other.engine.dispose()


def test_retention_keeps_a_queued_event_until_it_is_folded(store):
    store.insert_events(*stored_form(clicks(3, hours_ago=24 * 40)))
    cutoff = int((datetime.now(UTC) - timedelta(days=30)).timestamp() * 1000)
    assert store.delete_events_before(cutoff, 100) == 0
    store.settle()
    assert store.delete_events_before(cutoff, 100) == 3
    assert store.count_events() == 3  # the aggregates keep counting them


def test_a_rebuild_folds_the_queue(store):
    store.insert_events(*stored_form(clicks(10)))
    store.rebuild_aggregates()
    assert (queued(store), folded_events(store)) == (0, 10)
    assert store.count_events() == 10


def test_two_processes_folding_in_the_background_while_ingesting_stay_exact(db_url):
    """Two stores on one database (two workers), each ingesting from several threads while its
    folder and the readouts of the other threads fold at the same time: a rebuild agrees."""
    first, second = (MetricsStore(make_engine(db_url)) for _ in range(2))
    first.init_schema()
    define_metrics(first.engine)
    for store in (first, second):
        store.start_folding(delay=0, poll=0.01)
    batches = random_batches(random.Random(31), 1500, 40)
    counts = []

    def feed(store, mine):
        for n, batch in enumerate(mine):
            store.insert_events(*zip(*batch, strict=True))
            if n % 5 == 0:
                counts.append(store.count_events(EventFilter(experiment="landing")))

    fed = run_together(*[functools.partial(feed, store, batches[i::4])
                         for i, store in enumerate([first, second, first, second])], timeout=120)
    assert fed == [None] * 4  # no thread failed
    assert len(counts) >= 4  # readouts answered (each settling) while the others ingested and folded
    for store in (first, second):
        store.stop_folding()
    assert_matches_rebuild(first)
    for store in (first, second):
        store.engine.dispose()


# A fold that fails: one event's fold fails on its own (a bug, data the fold cannot take); the rest goes on.

def poison(monkeypatch, *visitors: str, error: Exception | None = None, times: int | None = None) -> list:
    """Make every fold whose events include one of `visitors` fail with `error` (a ValueError quoting
    the visitor by default), `times` times or always; returns the list of failures so far."""
    failures = []
    apply = aggregates.apply

    def failing_apply(conn, rows, *args, **kwargs):
        hit = [row.visitor_id for row in rows if row.visitor_id in visitors]
        if hit and (times is None or len(failures) < times):
            failures.append(hit)
            raise error or ValueError(f"cannot fold the events of {hit[0]}")
        return apply(conn, rows, *args, **kwargs)

    monkeypatch.setattr(aggregates, "apply", failing_apply)
    return failures


def failed_rows(store: MetricsStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(fold_failed.c.event_id, fold_failed.c.error))]


def within(seconds: float, call):
    """call() in a thread: its result, or the exception it raised; the test fails when it has not
    returned after `seconds`."""
    outcome = []

    def run():
        try:
            outcome.append((call(), None))
        except Exception as exc:  # noqa: BLE001 - raised again in the test's thread
            outcome.append((None, exc))

    thread = threading.Thread(target=run, daemon=True)  # a call that hangs does not hold up the tests' exit
    thread.start()
    thread.join(seconds)
    assert outcome, f"{call} did not return within {seconds} s"
    result, error = outcome[0]
    if error is not None:
        raise error
    return result


def drop_events(store: MetricsStore, event_ids: list[str]) -> None:
    with store.engine.begin() as conn:
        conn.execute(events.delete().where(events.c.event_id.in_(event_ids)))


def test_an_event_whose_fold_fails_is_set_aside_and_the_rest_of_its_batch_is_counted(store, monkeypatch, caplog):
    rows = clicks(40)
    rows[17]["visitor_id"] = "bad-visitor"
    poison(monkeypatch, "bad-visitor")
    stored = stored_form(rows)
    store.insert_events(*stored)
    assert queued(store) == 40  # one batch, folded at the readout
    assert within(30, store.count_events) == 39
    [(event_id, error)] = failed_rows(store)
    assert event_id == stored[0][17].event_id
    assert error.startswith("ValueError at tests/storage/test_folding.py:") and "bad-visitor" not in error
    assert queued(store) == 0
    logged = [r for r in caplog.records if r.levelname == "ERROR" and event_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info[0] is ValueError  # once, with its traceback
    # the other 39 are counted exactly: the aggregates equal a rebuild from the events without it
    drop_events(store, [event_id])
    assert_matches_rebuild(store)


def test_a_rebuild_counts_the_events_set_aside(store, monkeypatch):
    poison(monkeypatch, "v3", "v12")
    store.insert_events(*stored_form(clicks(20)))
    assert within(30, store.count_events) == 18
    assert len(failed_rows(store)) == 2
    monkeypatch.undo()  # the bug is fixed
    store.rebuild_aggregates()
    assert (store.count_events(), failed_rows(store), queued(store)) == (20, [], 0)
    assert_matches_rebuild(store)


def test_only_the_failing_events_are_set_aside_among_many(store, monkeypatch):
    bad = {"v5", "v6", "v700", "v1999"}  # neighbours, and the far ends of a full batch
    poison(monkeypatch, *bad)
    rows = clicks(2000)
    stored = [row for start in range(0, 2000, 500) for row in stored_form(rows[start:start + 500])[0]]
    for start in range(0, 2000, 500):
        store.insert_events(stored[start:start + 500])
    assert within(60, store.count_events) == 2000 - len(bad)  # one fold of 2,000 entries, then its parts
    failed = {event_id for event_id, _ in failed_rows(store)}
    assert {row.visitor_id for row in stored if row.event_id in failed} == bad
    drop_events(store, sorted(failed))
    assert_matches_rebuild(store)


def test_the_background_folder_sets_a_failing_event_aside_and_keeps_folding(db_url, monkeypatch):
    store = MetricsStore(make_engine(db_url)).start_folding(delay=0, poll=0.05)
    store.init_schema()
    poison(monkeypatch, "bad0")
    store.insert_events(*stored_form(clicks(1, "bad") + clicks(10)))
    store.insert_events(*stored_form(clicks(25, "later")))
    deadline = time.monotonic() + 30
    while (queued(store), folded_events(store)) != (0, 35):
        assert time.monotonic() < deadline, "the folder stopped at the failing event"
        time.sleep(0.02)
    assert len(failed_rows(store)) == 1
    store.stop_folding()
    store.engine.dispose()


def test_a_transient_error_is_folded_again_later_not_set_aside(db_url, monkeypatch):
    store = MetricsStore(make_engine(db_url)).start_folding(delay=0, poll=0.05)
    store.init_schema()
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    failures = poison(monkeypatch, "v1", error=lost, times=2)
    store.insert_events(*stored_form(clicks(10)))
    deadline = time.monotonic() + 30
    while folded_events(store) != 10:
        assert time.monotonic() < deadline, "the folder did not fold again after the error"
        time.sleep(0.02)
    assert (len(failures), failed_rows(store), queued(store)) == (2, [], 0)
    store.stop_folding()
    store.engine.dispose()


def test_a_readout_meeting_a_transient_error_fails_and_the_next_one_folds(store, monkeypatch):
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    poison(monkeypatch, "v1", error=lost, times=1)
    store.insert_events(*stored_form(clicks(10)))
    with pytest.raises(OperationalError):
        store.count_events()
    assert (queued(store), failed_rows(store)) == (10, [])
    assert store.count_events() == 10


def test_the_backlog_counts_the_queue_its_oldest_entry_and_the_events_set_aside(store, monkeypatch):
    assert store.fold_backlog() == FoldBacklog(0, False, None, 0, False)
    store.insert_events(*stored_form(clicks(5)))
    backlog = store.fold_backlog()
    assert (backlog.queued, backlog.queued_more, backlog.failed, backlog.behind) == (5, False, 0, False)
    assert 0 <= backlog.oldest_queued_seconds < 30
    with store.engine.begin() as conn:  # the oldest entry waited two minutes: the folding falls behind
        first = conn.execute(select(func.min(fold_queue.c.seq))).scalar_one()
        conn.execute(fold_queue.update().where(fold_queue.c.seq == first)
                     .values(queued_at=fold_queue.c.queued_at - 120_000))
    backlog = store.fold_backlog()
    assert backlog.oldest_queued_seconds >= 120 and backlog.behind
    monkeypatch.setattr(store_module, "BACKLOG_COUNT", 3)  # counting stops there, and says there are more
    assert store.fold_backlog().queued == 3 and store.fold_backlog().queued_more
    poison(monkeypatch, "v2")
    store.settle()
    assert store.fold_backlog() == FoldBacklog(0, False, None, 1, False)
    assert store.fold_backlog().behind


def test_retention_keeps_an_event_whose_fold_failed_until_a_rebuild_counts_it(store, monkeypatch):
    poison(monkeypatch, "v1")
    store.insert_events(*stored_form(clicks(3, hours_ago=24 * 40)))
    cutoff = int((datetime.now(UTC) - timedelta(days=30)).timestamp() * 1000)
    store.settle()
    assert store.delete_events_before(cutoff, 100) == 2
    monkeypatch.undo()
    store.rebuild_aggregates()
    assert store.count_events() == 1  # the kept event, counted again; the deleted ones are not in a rebuild
    assert store.delete_events_before(cutoff, 100) == 1


def test_a_fold_that_fails_for_every_event_sets_a_few_aside_then_leaves_the_rest_queued(store, monkeypatch):
    monkeypatch.setattr(store_module, "SET_ASIDE_PER_MINUTE", 3)
    poison(monkeypatch, *(f"v{n}" for n in range(10)))  # a bug: every event fails
    store.insert_events(*stored_form(clicks(10)))
    with pytest.raises(ValueError):
        within(30, store.count_events)  # fails at once rather than take every event apart
    assert (len(failed_rows(store)), queued(store)) == (3, 7)
    with pytest.raises(ValueError):
        store.count_events()
    assert (len(failed_rows(store)), queued(store)) == (3, 7)
    monkeypatch.undo()  # the fix: what waited is folded, and a rebuild counts the three set aside
    assert store.count_events() == 7
    store.rebuild_aggregates()
    assert store.count_events() == 10


def test_queue_numbers_are_never_handed_out_again(store):
    """A readout folds "up to the last entry queued before it": an entry queued after it must come after."""
    store.insert_events(*stored_form(clicks(3)))
    with store.engine.connect() as conn:
        last = conn.execute(select(func.max(fold_queue.c.seq))).scalar_one()
    store.settle()
    assert queued(store) == 0
    store.insert_events(*stored_form(clicks(2, prefix="w")))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.min(fold_queue.c.seq))).scalar_one() > last
