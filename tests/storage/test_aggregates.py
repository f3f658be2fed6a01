"""The aggregates kept at ingest equal the ones rebuilt from the raw events, on both backends."""
import functools
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, insert, select

from core.db import make_engine
from core.events import DIMENSIONS, parse_events, to_row
from core.migrate import _config, upgrade
from metrics_service import store as metrics_store
from metrics_service.aggregates import ANY
from metrics_service.catalogue_store import CatalogueStore
from metrics_service.store import EventFilter, MetricsStore, aggregates, events
from tests.helpers import (
    assert_matches_rebuild,
    assert_metric_sums_equal,
    metric_snapshot,
    run_together,
    snapshot,
    stored_form,
)

CONTEXTS = {"device": ["desktop", "mobile", "tablet"], "browser": ["Chrome", "Firefox", "Mobile Safari"],
            "utm_source": ["google", "newsletter", "bing", None], "utm_campaign": [f"c{i}" for i in range(8)] + [None],
            "referrer_host": ["news.example.org", None], "country": ["DE", "FR", None]}


def random_events(rng: random.Random, count: int, leave_out: str | None = None, visitors: int = 60) -> list[dict]:
    now = datetime.now(UTC)
    visitors = [f"v{i}" for i in range(visitors)]
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count // 2)]
    rows = []
    for _ in range(count):
        event = {
            "visitor_id": rng.choice(visitors),
            "variant": rng.choice("AB"),
            "experiment": rng.choice(["landing", "hero", "pricing"]),
            "event_type": rng.choice(["page_view", "page_view", "cta_click", "form_submit", CUSTOM]),
            "timestamp": (now - timedelta(minutes=rng.randint(0, 60 * 24 * 5))).isoformat(),  # out of order
            "event_id": rng.choice(ids),  # many repeats
        }
        if event["event_type"] == leave_out:
            continue
        if rng.random() < 0.1:
            event[rng.choice(["forced", "bot"])] = True
        if event["event_type"] == "page_view" and rng.random() < 0.8:
            context = {name: rng.choice(values) for name, values in CONTEXTS.items()}
            event["context"] = {name: value for name, value in context.items() if value}
        if event["event_type"] != "page_view" and rng.random() < 0.7:
            event["value"] = round(rng.lognormvariate(3, 1), 2)
        rows.append(event)
    return rows


CUSTOM = "pricing_click"  # a registered event type


def random_batches(rng: random.Random, count: int, largest: int) -> list[list[tuple]]:
    """`count` random events as (row, context) pairs, cut into batches of 1 to `largest`."""
    generated = random_events(rng, count)
    half = count // 2  # parse_events takes at most 1,000 events at a time
    rows = [pair for part in (generated[:half], generated[half:]) for pair in zip(*stored_form(part), strict=True)]
    batches = []
    while rows:
        size = rng.randint(1, largest)
        batches.append(rows[:size])
        rows = rows[size:]
    return batches


def define_metrics(engine) -> None:
    """The custom event type, and metrics of each kind on it and on a built-in type (one capped)."""
    catalogue = CatalogueStore(engine)
    catalogue.add_event_type(CUSTOM, "")
    for key, event_type, kind, cap in [("pricing", CUSTOM, "conversion", None), ("pricing_n", CUSTOM, "count", None),
                                       ("revenue", CUSTOM, "value", 50.0), ("clicks", "cta_click", "count", None)]:
        catalogue.save_metric({"key": key, "name": key, "event_type": event_type, "kind": kind,
                               "direction": "increase", "cap": cap}, create=True)


@pytest.fixture
def metrics(db_url):
    store = MetricsStore(make_engine(db_url), segment_limit=5)  # utm_campaign's 8 values: some fold into (other)
    store.init_schema()
    define_metrics(store.engine)
    yield store
    store.engine.dispose()


def test_maintained_aggregates_equal_a_rebuild(metrics):
    rng = random.Random(11)
    rows = random_events(rng, 1500)
    position = 0
    while position < len(rows):
        size = rng.randint(1, 120)
        metrics.insert_events(*stored_form(rows[position:position + size]))
        position += size
    with metrics.engine.connect() as conn:
        maintained = snapshot(conn, aggregates)
        sums = metric_snapshot(conn)
    assert all(maintained.values())
    assert {key[2] for key in sums["agg_metric"]} == {"pricing", "pricing_n", "revenue", "clicks"}
    levels = {name: {row[:2] for row in rows if row[0] == ANY} for name, rows in maintained.items()}
    assert levels["visitor_state"] == levels["agg_cohorts"] == {(ANY, "A"), (ANY, "B"), (ANY, ANY)}
    assert levels["visitor_context"] == levels["agg_segments"] == {(ANY, "A"), (ANY, "B"), (ANY, ANY)}
    campaigns = {row[3] for row in maintained["agg_segments"] if row[2] == "utm_campaign"}
    assert len(campaigns - {"(none)", "(other)"}) == 5 and {"(none)", "(other)"} <= campaigns
    assert levels["visitor_periods"] == levels["agg_active"] == {(ANY, "A"), (ANY, "B")}
    metrics.rebuild_aggregates()
    with metrics.engine.connect() as conn:
        assert snapshot(conn, aggregates) == maintained
        assert_metric_sums_equal(sums, metric_snapshot(conn))


def test_queries_match_counts_from_raw_events(metrics):
    rows = random_events(random.Random(5), 800)
    metrics.insert_events(*stored_form(rows))
    def raw(*columns, **match):
        """Distinct values of the columns among the counted events that match."""
        rows = select(*columns).where(events.c.excluded.is_(None), *(events.c[k] == v for k, v in match.items()))
        with metrics.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(rows.group_by(*columns).subquery())).scalar_one()

    flt = EventFilter(experiment="landing")
    assert metrics.count_events(flt) == raw(events.c.id, experiment="landing")
    assert metrics.unique_visitors(flt)[None] == raw(events.c.variant, events.c.visitor_id, experiment="landing")
    # across experiments a visitor counts once: overall, per variant, per event type
    assert metrics.unique_visitors(EventFilter())[None] == raw(events.c.visitor_id)
    assert metrics.unique_visitors(EventFilter(), "variant") == {v: raw(events.c.visitor_id, variant=v) for v in "AB"}
    assert metrics.unique_visitors(EventFilter(variant="B"))[None] == raw(events.c.visitor_id, variant="B")
    assert metrics.unique_visitors(EventFilter(), "event_type") == {
        t: raw(events.c.visitor_id, event_type=t) for t in ("page_view", "cta_click", "form_submit", CUSTOM)}
    # a registered type's visitors, as the built-in types' (the masks keep one bit for all registered types)
    for flt, match in [(EventFilter(experiment="landing"), {"experiment": "landing"}), (EventFilter(), {})]:
        cells = {(c["variant"], c["event_type"]): c["visitors"] for c in metrics.matrix(flt)}
        for variant in "AB":
            assert cells[(variant, CUSTOM)] == raw(events.c.visitor_id, variant=variant, event_type=CUSTOM, **match)
            assert cells[(variant, "cta_click")] == raw(events.c.visitor_id, variant=variant, event_type="cta_click",
                                                        **match)


@pytest.mark.parametrize("seed", [1, 2])
def test_events_per_segment_follow_contexts_that_change(metrics, seed):
    """Few visitors, each exposed many times with different contexts, their events arriving in random
    order in random batches: contexts arrive after the visitors' other events and earlier exposures
    replace them. The events and active visitors per segment stay equal to a rebuild, and to what
    the raw events say (each event in the segment of its visitor's earliest counted exposure)."""
    rng = random.Random(seed)
    rows = random_events(rng, 900, visitors=12)
    rng.shuffle(rows)
    position = 0
    while position < len(rows):
        size = rng.randint(1, 40)
        metrics.insert_events(*stored_form(rows[position:position + size]))
        position += size
    assert_matches_rebuild(metrics)

    context = metrics_store.event_context
    with metrics.engine.connect() as conn:
        stored = conn.execute(select(events.c.experiment, events.c.variant, events.c.visitor_id, events.c.event_type,
                                     events.c.ts, events.c.event_id, context.c.device)
                              .select_from(events.outerjoin(context, context.c.event_id == events.c.event_id))
                              .where(events.c.excluded.is_(None))).all()
    earliest: dict[tuple, tuple] = {}  # (experiment or ANY, variant, visitor) -> (ts, event id, device)
    exposures = [e for e in stored if e.event_type == "page_view"]
    with metrics.engine.connect() as conn:
        with_context = set(conn.execute(select(context.c.event_id)).scalars())
    for e in exposures:
        if e.event_id not in with_context:
            continue
        for key in ((e.experiment, e.variant, e.visitor_id), (ANY, e.variant, e.visitor_id)):
            if key not in earliest or (e.ts, e.event_id) < earliest[key][:2]:
                earliest[key] = (e.ts, e.event_id, e.device or "(none)")
    moved = sum(1 for e in exposures if e.event_id in with_context) - len({k for k in earliest if k[0] != ANY})
    assert moved > 50  # many exposures were replaced by earlier ones or came after one
    hour = 3_600_000
    for device in ("desktop", "mobile", "tablet", "(none)"):
        segment = ("device", device)
        for experiment in ("landing", "hero"):
            mine = [e for e in stored if e.experiment == experiment
                    and earliest.get((experiment, e.variant, e.visitor_id), (0, 0, None))[2] == device]
            flt = EventFilter(experiment=experiment, segment=segment)
            assert metrics.count_events(flt) == len(mine)
            cells = metrics.matrix(flt)
            assert {(c["variant"], c["event_type"]): c["events"] for c in cells} == Counter(
                (e.variant, e.event_type) for e in mine)
            # the visitors per cell (a registered type's too): those of the segment with that event type
            who = {(e.variant, e.event_type, e.visitor_id) for e in mine}
            assert {(c["variant"], c["event_type"]): c["visitors"] for c in cells} == Counter(
                (variant, event_type) for variant, event_type, _ in who)
        # across experiments: events in their experiment's segment, visitors active per hour in their
        # segment across experiments
        series = {(r["bucket"], r["variant"]): (r["events"], r["visitors"])
                  for r in metrics.timeseries(EventFilter(segment=segment), hour)}
        events_per_hour = Counter((e.ts - e.ts % hour, e.variant) for e in stored
                                  if earliest.get((e.experiment, e.variant, e.visitor_id), (0, 0, None))[2] == device)
        active = {(e.ts - e.ts % hour, e.variant, e.visitor_id) for e in stored
                  if earliest.get((ANY, e.variant, e.visitor_id), (0, 0, None))[2] == device}
        visitors_per_hour = Counter((bucket, variant) for bucket, variant, _ in active)
        assert {k: n for k, (n, _) in series.items()} == events_per_hour
        assert {k: v for k, (_, v) in series.items() if v} == {
            k: n for k, n in visitors_per_hour.items() if k in events_per_hour}


def test_an_event_counted_while_its_visitors_context_changes_lands_in_the_new_segment(db_url):
    """One worker stores an earlier exposure that moves a visitor to another segment while a second
    worker, which knows the visitor (it skips their state), stores a click: the click waits for the
    move and is counted in the new segment, not stranded in the old one."""
    import threading

    from core.db import write_transaction

    first, second = (MetricsStore(make_engine(db_url)) for _ in range(2))
    first.init_schema()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)

    def event(minutes, event_type, device=None):
        return {"visitor_id": "v1", "variant": "A", "event_type": event_type,
                "timestamp": (start + timedelta(minutes=minutes)).isoformat()} | (
            {"context": {"device": device}} if device else {})

    second.insert_events(*stored_form([event(60, "page_view", "mobile"), event(90, "cta_click")]))
    clicked = threading.Thread(target=second.insert_events, args=stored_form([event(100, "cta_click")]))
    with write_transaction(first.engine) as conn:
        first._store(conn, [list(zip(*stored_form([event(0, "page_view", "desktop")]), strict=True))])
        first._fold_queued(conn, 10, None)  # the move, held open
        clicked.start()
        clicked.join(0.5)
    clicked.join(30)
    assert first.count_events(EventFilter(segment=("device", "desktop"))) == 4
    assert first.count_events(EventFilter(segment=("device", "mobile"))) == 0
    assert_matches_rebuild(first)
    for store in (first, second):
        store.engine.dispose()


def test_upgrade_adds_the_rows_across_experiments(db_url):
    """A database kept by the code before visitors were counted across experiments has no rows under
    experiment "*": the upgrade fills them from the stored events."""
    from sqlalchemy import delete

    engine = make_engine(db_url)
    config = _config(metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "m0003")
        rows = {row.event_id: row
                for row in map(to_row, parse_events(random_events(random.Random(4), 300, CUSTOM)))}
        conn.execute(insert(events), [{k: v for k, v in row._asdict().items() if k != "value"}
                                      for row in rows.values()])
        aggregates.rebuild(conn, events)  # what the code of the time kept, less the rows under "*"
        for name in ("visitor_state", "agg_cohorts", "visitor_periods", "agg_active"):
            table = getattr(aggregates, name)
            conn.execute(delete(table).where(table.c.experiment == ANY))
    cohorts = aggregates.agg_cohorts
    with engine.connect() as conn:  # read before the upgrade, as the code of the time read them
        assert conn.execute(select(func.count()).where(cohorts.c.experiment == ANY)).scalar_one() == 0
    upgrade(engine, metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    store = MetricsStore(engine)
    visitors = len({row.visitor_id for row in rows.values() if row.excluded is None})
    assert store.unique_visitors(EventFilter())[None] == visitors > 0
    assert_matches_rebuild(store)
    engine.dispose()


def test_upgrade_counts_the_stored_events_per_segment(db_url):
    """A database kept by the code before events were counted per segment (contexts and visitors per
    segment, no events per segment): the upgrade fills the events per segment from the stored events."""
    from metrics_service.aggregates import counts

    engine = make_engine(db_url)
    config = _config(metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "m0007")
        rows, contexts = stored_form(random_events(random.Random(6), 400, CUSTOM))
        first = {}
        for row, context in zip(rows, contexts, strict=True):
            first.setdefault(row.event_id, (row, context))
        conn.execute(insert(events), [row._asdict() for row, _ in first.values()])
        conn.execute(insert(metrics_store.event_context), [
            {"event_id": row.event_id, **dict(zip(DIMENSIONS, context, strict=True))}
            for row, context in first.values() if context is not None])
        aggregates.rebuild(conn, events)  # what the code of the time kept
        aggregates._rebuild_segments(conn, events, metrics_store.event_context, counts(events))
        metrics_store.metric_tables.rebuild(conn, events, counts(events))
    upgrade(engine, metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    store = MetricsStore(engine)
    mobile = store.count_events(EventFilter(segment=("device", "mobile")))
    assert 0 < mobile < store.count_events()
    assert_matches_rebuild(store)
    engine.dispose()


def test_existing_database_upgrades_in_place_with_backfill(db_url):
    engine = make_engine(db_url)
    config = _config(metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "m0001")
        rows = {row.event_id: row
                for row in map(to_row, parse_events(random_events(random.Random(3), 300, CUSTOM)))}
        conn.execute(insert(events), [{k: v for k, v in row._asdict().items() if k != "value"}
                                      for row in rows.values()])
    upgrade(engine, metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    store = MetricsStore(engine)
    with engine.connect() as conn:
        backfilled = snapshot(conn, aggregates)
    assert backfilled["agg_events"]
    store.rebuild_aggregates()
    with engine.connect() as conn:
        assert snapshot(conn, aggregates) == backfilled
    engine.dispose()


@pytest.mark.parametrize("memory", [3, 100_000], ids=["forgetful", "roomy"])
def test_several_processes_on_one_database_stay_exact(db_url, memory):
    """Each worker process remembers what it wrote, not what the others wrote: two stores on one
    database (as two gunicorn workers or two instances behind a load balancer), fed interleaved
    and concurrent batches, still keep the aggregates equal to a rebuild."""

    first, second = (MetricsStore(make_engine(db_url), memory=memory) for _ in range(2))
    first.init_schema()
    define_metrics(first.engine)
    batches = random_batches(random.Random(21), 1200, 60)
    for i, batch in enumerate(batches[:len(batches) // 2]):  # interleaved
        (first, second)[i % 2].insert_events(*zip(*batch, strict=True))
    rest = batches[len(batches) // 2:]

    def feed(store, mine):
        for batch in mine:
            store.insert_events(*zip(*batch, strict=True))

    fed = run_together(*[functools.partial(feed, store, rest[i::4])
                         for i, store in enumerate([first, second, first, second])])
    assert fed == [None] * 4  # no thread failed
    assert_matches_rebuild(first)
    for store in (first, second):
        store.engine.dispose()


def test_concurrent_callers_count_each_event_once(metrics):
    """Callers sharing a transaction (group commit) each learn how many of their own events were
    new; an id sent by several callers at once is accepted exactly once."""
    import threading

    events_by_id = {row.event_id: row for row in map(to_row, parse_events(random_events(random.Random(8), 400)))}
    rows = list(events_by_id.values())
    rng = random.Random(9)
    works = [rng.sample(rows, 40) for _ in range(16)]  # overlapping
    accepted = [0] * len(works)

    def call(i):
        accepted[i] = metrics.insert_events(works[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(accepted) == len({row.event_id for work in works for row in work})
    assert metrics.insert_events(rows) == len(rows) - sum(accepted)
    assert_matches_rebuild(metrics)


def test_workers_share_the_values_a_dimension_keeps(db_url):
    """Two workers on one database: a value kept by one is kept by the other, even once the other has
    seen the dimension full; a value neither kept becomes (other) for both."""
    first, second = (MetricsStore(make_engine(db_url), segment_limit=2) for _ in range(2))
    first.init_schema()

    def exposure(store, visitor, campaign):
        store.insert_events(*stored_form([{"visitor_id": visitor, "variant": "A", "event_type": "page_view",
                                           "context": {"utm_campaign": campaign}}]))

    exposure(first, "v1", "spring")
    exposure(second, "v2", "summer")  # the second worker fills the dimension
    exposure(second, "v3", "spring")  # kept by the first worker: kept
    exposure(first, "v4", "autumn")
    exposure(second, "v5", "autumn")
    with first.engine.connect() as conn:
        rows = conn.execute(select(metrics_store.event_context.c.utm_campaign)).scalars().all()
    assert sorted(rows) == ["(other)", "(other)", "spring", "spring", "summer"]
    assert_matches_rebuild(first)
    for store in (first, second):
        store.engine.dispose()


def test_a_rebuild_on_postgresql_leaves_the_planner_statistics_of_what_it_wrote(metrics):
    """Readouts right after a rebuild get plans for the rebuilt tables, not for the empty ones they were."""
    if metrics.engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans without statistics unless asked to keep them")
    metrics.insert_events(*stored_form(random_events(random.Random(5), 300)))
    metrics.rebuild_aggregates()
    names = [table.name for table in aggregates.tables]
    with metrics.engine.connect() as conn:
        analyzed = dict(conn.exec_driver_sql(
            "SELECT relname, last_analyze FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = ANY(%(names)s)", {"names": names}).all())
    assert sorted(analyzed) == sorted(names)
    assert all(analyzed.values()), analyzed
