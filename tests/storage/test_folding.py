"""Ingest stores raw events and queues them; the aggregates follow in a fold (a background thread,
or a readout that settles first). Readouts stay exact and nothing queued is lost."""
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import make_engine
from metrics_service.store import EventFilter, MetricsStore, aggregates, fold_queue
from tests.helpers import assert_matches_rebuild, stored_form
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

    threads = [threading.Thread(target=feed, args=(store, batches[i::4]))
               for i, store in enumerate([first, second, first, second])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(counts) >= 4  # readouts answered (each settling) while the others ingested and folded
    for store in (first, second):
        store.stop_folding()
    assert_matches_rebuild(first)
    for store in (first, second):
        store.engine.dispose()
