"""metrics_service storage: the raw event log, the aggregates kept beside it, and the queries (which
read only the aggregates, so their cost does not grow with the number of events)."""
from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    FetchedValue,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError

from core.db import (
    DriverConnection,
    KeptWriter,
    delete_rows,
    find_rows,
    insert_ignore,
    insert_new,
    insert_rows,
    is_transient,
    now_millis,
    now_millis_sql,
    param_mark,
    run_write,
)
from core.events import DIMENSIONS, EVENT_BITS, EVENT_TYPES, EXPOSURE, EventRow, event_bit
from core.group_commit import GroupCommit
from core.migrate import upgrade
from core.settings import DEFAULT_SEGMENT_VALUES
from metrics_service.aggregates import ANY, ANY_TYPE, NONE, Aggregates, Counted, Exposure, counts
from metrics_service.metric_aggregates import MetricAggregates, newly_exposed
from metrics_service.series import DAY_MS, HOUR_MS, bucket_start
from metrics_service.visitor_memory import MEMORY_VISITORS, Known

log = logging.getLogger(__name__)
metadata = MetaData()
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_metrics"

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("experiment", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("visitor_id", String(128), nullable=False),
    Column("ts", BigInteger, nullable=False),  # milliseconds since the epoch, UTC
    Column("properties", Text, nullable=True),  # JSON
    Column("excluded", String(32), nullable=True),  # why the event is left out of stats; NULL counts
    Column("value", Float, nullable=True),  # the event's numeric value (value metrics)
    Index("ix_events_ts", "ts"),
)

# Background jobs (the daily retention): who runs one and until when, and when it is next due.
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=True),
    Column("lease_until", BigInteger, nullable=False),  # ms since the epoch; free after it
    Column("next_run", BigInteger, nullable=False),  # ms since the epoch; due from then on
)

# The counted events stored and not yet folded into the aggregates (see MetricsStore.fold_queued).
fold_queue = Table(
    "fold_queue",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("queued_at", BigInteger, nullable=False, server_default=FetchedValue()),  # ms, the database's clock
    sqlite_autoincrement=True,  # numbers never handed out again (see migration m0010)
)
# The queued events whose fold failed on its own (a bug, or data the fold cannot take), out of the queue
# so that the rest is folded: still in events, out of the aggregates until a rebuild counts them.
fold_failed = Table(
    "fold_failed",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("error", String(200), nullable=False),  # the error's type and place (fold_error), never its message
    Column("failed_at", BigInteger, nullable=False),  # ms since the epoch
)
FOLD_ROWS = 2000  # events folded per transaction: the write lock is held for tens of milliseconds
FOLD_DELAY = 0.05  # seconds the folder lets ingest gather after being woken: fewer, larger folds
FOLD_POLL = 2.0  # seconds between looks at the queue when not woken (another process's leftovers)
# Events one process sets aside (fold_failed) in a minute at most: more means the fold itself is broken
# (a bug that fails every event) rather than some events, and the rest stays queued for the fix.
SET_ASIDE_PER_MINUTE = 100
BACKLOG_COUNT = 100_000  # /health counts queued and failed entries up to this many (a bounded scan), then says more
BACKLOG_LAG = 60.0  # seconds: a queue whose oldest entry waited longer means the folding falls behind

# The context of each counted exposure that carried one (see core.events.Context), its values folded.
event_context = Table(
    "event_context",
    metadata,
    Column("event_id", String(36), primary_key=True),
    *(Column(name, String(64), nullable=True) for name in DIMENSIONS),
)
EVENT_CONTEXT_COLUMNS = ("event_id", *DIMENSIONS)
# The values each dimension keeps (at most SEGMENT_VALUES per dimension); any other is stored as OTHER.
segment_values = Table(
    "segment_values",
    metadata,
    Column("dimension", String(32), primary_key=True),
    Column("value", String(64), primary_key=True),
)
OTHER = "(other)"
Context = tuple[str | None, ...]  # values in DIMENSIONS order

aggregates = Aggregates(metadata)
metric_tables = MetricAggregates(metadata)


@dataclass(frozen=True)
class EventFilter:
    """Filters for stats. Time filters work on whole hours: an hour is in when it starts at or after
    the hour of `since` and before `until`. Events count by their time; visitors by their first event."""

    experiment: str | None = None
    variant: str | None = None
    event_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    segment: tuple[str, str] | None = None  # (dimension, value): visitors whose exposure had that context, and
    # their events (each in the segment of its visitor's context in its experiment)

    def keys(self, table: Table) -> list:
        conditions = []
        if self.experiment:
            conditions.append(table.c.experiment == self.experiment)
        if self.variant:
            conditions.append(table.c.variant == self.variant)
        return conditions

    def scope(self, table: Table, by_variant: bool) -> list:
        """Conditions on a per-visitor aggregate (agg_cohorts, agg_active). Without an experiment they
        read the rows kept across experiments, where a visitor counts once: per variant when the
        query groups or filters by variant, else overall."""
        if self.experiment:
            return self.keys(table)
        if self.variant or not by_variant:
            return [table.c.experiment == ANY, table.c.variant == (self.variant or ANY)]
        return [table.c.experiment == ANY, table.c.variant != ANY]

    def in_segment(self, table: Table) -> list:
        """Conditions on a per-segment aggregate (agg_segments, agg_event_segments, ...) for the segment."""
        if self.segment is None:
            return []
        return [table.c.dimension == self.segment[0], table.c.value == self.segment[1]]

    def window(self, column) -> list:
        conditions = []
        if self.since_ms is not None:
            conditions.append(column >= bucket_start(self.since_ms, HOUR_MS))
        if self.until_ms is not None:
            conditions.append(column < self.until_ms)
        return conditions


def settled(read: Callable) -> Callable:
    """A store method that reads the aggregates: it folds what ingest queued first (MetricsStore.settle),
    so its answer counts every event acknowledged before it was called; within a readout
    (MetricsStore.reading), what the readout settled at its start."""
    @functools.wraps(read)
    def settled_read(self, *args, **kwargs):
        with self.reading():
            return read(self, *args, **kwargs)
    return settled_read


_readouts = threading.local()  # the stores this thread is in a readout of (MetricsStore.reading)


@dataclass(frozen=True)
class FoldBacklog:
    """The fold queue's state (MetricsStore.fold_backlog): entries waiting and whether there are more
    than BACKLOG_COUNT; the oldest one's wait in seconds (None when none waits); entries whose fold
    failed (fold_failed) and whether there are more."""

    queued: int
    queued_more: bool
    oldest_queued_seconds: float | None
    failed: int
    failed_more: bool

    @property
    def behind(self) -> bool:
        """Something needs a look: an event the aggregates leave out, or a fold BACKLOG_LAG behind."""
        return self.failed > 0 or (self.oldest_queued_seconds or 0) > BACKLOG_LAG


def fold_error(error: BaseException) -> str:
    """What fold_failed keeps of an error: its type, SQLSTATE and the innermost place in this project's
    code it passed, never its message (which may quote the event's values)."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = type(cause).__name__
    if getattr(cause, "sqlstate", None):
        text += f" (SQLSTATE {cause.sqlstate})"
    root = str(Path(__file__).resolve().parents[1])
    ours = [frame for frame in traceback.extract_tb(error.__traceback__)
            if frame.filename.startswith(root) and "site-packages" not in frame.filename]
    if ours:
        text += f" at {Path(ours[-1].filename).relative_to(root)}:{ours[-1].lineno} in {ours[-1].name}"
    return text[:200]


def _nothing() -> None:
    """What a write that learnt nothing remembers after its commit."""


def has(mask_column, bits: int):
    return mask_column.op("&")(bits) == bits


class MetricsStore:
    def __init__(self, engine: Engine, memory: int = MEMORY_VISITORS, segment_limit: int = DEFAULT_SEGMENT_VALUES):
        """`memory`: how many recent visitors' stored rows this process remembers (see Known);
        `segment_limit`: how many distinct values each context dimension keeps before OTHER."""
        self.engine = engine
        self._known = Known(memory)
        self._group: GroupCommit[int] = GroupCommit(self._write)
        self._writer = KeptWriter(engine)  # the group commit's transactions, one at a time
        self.segment_limit = segment_limit
        self._admitted: set[tuple[str, str]] = set()  # (dimension, value) known to be kept
        self._full: set[str] = set()  # dimensions known to hold segment_limit values
        self._refused: set[tuple[str, str]] = set()  # values of full dimensions known not to be kept
        self._folder: Folder | None = None  # folding in the background (start_folding), else in insert_events
        self._folding = threading.Lock()  # the folder and readouts of this process fold in turn
        self._set_aside: deque[float] = deque()  # when this process set events aside, the last minute's

    def init_schema(self) -> None:
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE)

    def insert_events(self, rows: Sequence[EventRow], contexts: Sequence[Context | None] | None = None) -> int:
        """Store rows (with their exposures' contexts, when given: one per row, None for none) in one
        transaction, shared with the requests arriving at the same time (group commit), and queue the
        counted ones for folding into the aggregates (see fold_queued); rows whose event_id is already
        stored are skipped. Returns how many of these rows were new."""
        if not rows:
            return 0
        stored = self._group.submit(list(zip(rows, contexts or [None] * len(rows), strict=True)))
        if self._folder is not None:
            self._folder.wake()
        else:
            self.settle()
        return stored

    def _write(self, batches: list[Sequence[tuple[EventRow, Context | None]]]) -> list[int]:
        """One transaction for several callers' rows (run again after a deadlock); how many rows of
        each caller were new."""
        counts, remember = self._writer.run(lambda conn: self._store(conn, batches))
        remember()
        return counts

    def _store(self, conn: DriverConnection, batches: list[Sequence[tuple[EventRow, Context | None]]]
               ) -> tuple[list[int], Callable[[], None]]:
        contexts: dict[str, Context] = {}
        for batch in batches:
            for row, context in batch:
                if context is not None:
                    contexts.setdefault(row.event_id, context)  # the first row with an id is the one stored
        stored = insert_new(conn, events.name, EventRow._fields, [row for batch in batches for row, _ in batch],
                            key=("event_id",))
        new_ids = {row.event_id for row in stored}
        counts = []
        for batch in batches:
            new = 0
            for row, _ in batch:
                if row.event_id in new_ids:
                    new_ids.discard(row.event_id)
                    new += 1
            counts.append(new)
        counted = [row for row in stored if row.excluded is None]
        exposed = [row for row in counted if row.event_id in contexts and row.event_type == EXPOSURE]
        remember_values = _nothing
        if exposed:
            folded, remember_values = self._fold(conn, [contexts[row.event_id] for row in exposed])
            insert_rows(conn, event_context.name, EVENT_CONTEXT_COLUMNS,
                        [(row.event_id, *values) for row, values in zip(exposed, folded, strict=True)])
        insert_rows(conn, fold_queue.name, ("event_id",), [(row.event_id,) for row in counted])
        return counts, remember_values

    # Folding: the aggregates follow the raw events a moment behind; readouts settle first ------------

    def start_folding(self, delay: float = FOLD_DELAY, poll: float = FOLD_POLL) -> MetricsStore:
        """Fold queued events in a background thread of this process (woken by each ingest, after
        `delay` seconds to let more gather; every `poll` seconds anyway, for what other processes
        left) instead of in the ingest request. Readouts call settle() first, so they stay exact."""
        self._folder = Folder(self, delay, poll).start()
        return self

    def stop_folding(self) -> None:
        """Stop the background folder (what is queued stays queued: a readout or another process folds it)."""
        if self._folder is not None:
            self._folder.stop()
            self._folder = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A readout made of several reads (a route's): the queue is settled once, at its start, and
        every read inside it, nested ones too, counts the events acknowledged before it began."""
        stores = _readouts.__dict__.setdefault("stores", set())
        if id(self) in stores:
            yield
            return
        self.settle()
        stores.add(id(self))
        try:
            yield
        finally:
            stores.discard(id(self))

    def settle(self) -> None:
        """Fold every event queued before this call (waiting for other processes folding some of
        them): what a readout calls first, so it counts every event acknowledged before it began."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(fold_queue.c.seq))).scalar_one()
        while last is not None:
            if self.fold_queued(upto=last):
                continue
            with self.engine.connect() as conn:
                waiting = conn.execute(select(fold_queue.c.seq).where(fold_queue.c.seq <= last).limit(1)).first()
            if waiting is None:
                return
            time.sleep(0.005)  # another thread or process is folding them (their entries are locked)

    def fold_queued(self, limit: int = FOLD_ROWS, upto: int | None = None) -> int:
        """Fold up to `limit` queued events (the oldest first, none after `upto`) into the aggregates
        and delete their entries, in one transaction; how many. On PostgreSQL entries another process
        is folding are skipped, not waited for. The threads of one process fold one at a time, as
        they wrote one group commit at a time before: the visitor memory is updated by one of them
        at a time, after its commit."""
        with self._folding:  # one fold at a time per process: what it remembers is updated in order
            try:
                taken, remember = run_write(self.engine, lambda conn: self._fold_queued(conn, limit, upto))
            except Exception as exc:
                if is_transient(exc) or self._failing_everything():  # the entries wait, nothing is lost
                    raise
                return self._fold_apart(self._queued_entries(limit, upto))
            remember()
        return taken

    def _queued_entries(self, limit: int, upto: int | None) -> list[tuple[int, str]]:
        """(seq, event_id) of the oldest `limit` entries, none after `upto`: the ones a fold takes."""
        query = select(fold_queue.c.seq, fold_queue.c.event_id).order_by(fold_queue.c.seq).limit(limit)
        if upto is not None:
            query = query.where(fold_queue.c.seq <= upto)
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def _fold_apart(self, entries: list[tuple[int, str]]) -> int:
        """Fold the queued `entries` (oldest first, a run of the queue) after a fold of them failed (not
        transiently): all together once more, then, while that fails, each half the same way, so one
        entry whose fold fails on its own (_quarantine) costs about 2 log2(n) short folds and holds up
        nothing else; past SET_ASIDE_PER_MINUTE, the error is raised instead. How many entries left the
        queue. Only failures take this path."""
        if not entries:
            return 0
        first, last = entries[0][0], entries[-1][0]
        try:
            taken, remember = run_write(self.engine, lambda conn: self._fold_queued(conn, len(entries), last,
                                                                                   after=first - 1))
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(entries) == 1:
                if self._failing_everything():
                    raise
                return self._quarantine(*entries[0], exc)
        else:
            remember()
            return taken
        half = len(entries) // 2
        return self._fold_apart(entries[:half]) + self._fold_apart(entries[half:])

    def _quarantine(self, seq: int, event_id: str, error: Exception) -> int:
        """Move the queue's entry (seq, event_id), whose fold failed on its own with `error`, to
        fold_failed, and log the error once: the event stays in events (a rebuild counts it and empties
        fold_failed), out of the aggregates until then. 1 when it was still queued (else another
        process folded or moved it meanwhile)."""
        def work(conn: Connection) -> bool:
            moved = conn.execute(delete(fold_queue).where(fold_queue.c.seq == seq, fold_queue.c.event_id == event_id))
            if moved.rowcount != 1:
                return False
            conn.execute(insert_ignore(conn, fold_failed).values(
                event_id=event_id, error=fold_error(error), failed_at=now_millis()))
            return True

        if not run_write(self.engine, work):
            return 0
        self._set_aside.append(time.monotonic())
        log.error("event %s could not be folded into the aggregates: left out of them (listed in fold_failed, "
                  "kept in events) until a rebuild counts it", event_id, exc_info=error)
        return 1

    def _failing_everything(self) -> bool:
        """Whether this process set SET_ASIDE_PER_MINUTE events aside in the last minute: then a fold
        that fails is left to fail (the readout with it), its entries queued, rather than taken apart."""
        while self._set_aside and self._set_aside[0] < time.monotonic() - 60:
            self._set_aside.popleft()
        return len(self._set_aside) >= SET_ASIDE_PER_MINUTE

    def fold_backlog(self) -> FoldBacklog:
        """What waits to be folded and what failed to be: two counts that stop at BACKLOG_COUNT and the
        oldest entry's age, read from the primary keys (cheap however long the queue)."""
        def bounded(table: Table) -> tuple[int, bool]:
            rows = select(*table.primary_key.columns).limit(BACKLOG_COUNT + 1).subquery()
            counted = conn.execute(select(func.count()).select_from(rows)).scalar_one()
            return min(counted, BACKLOG_COUNT), counted > BACKLOG_COUNT

        age = literal_column(now_millis_sql(self.engine.dialect.name)) - fold_queue.c.queued_at
        with self.engine.connect() as conn:
            queued, queued_more = bounded(fold_queue)
            failed, failed_more = bounded(fold_failed)
            oldest = conn.execute(select(age).order_by(fold_queue.c.seq).limit(1)).scalar()
        return FoldBacklog(queued, queued_more, None if oldest is None else max(0, oldest) / 1000,
                           failed, failed_more)

    def fold_failures(self, limit: int) -> list[tuple[str, str | None, str | None, str, int]]:
        """The latest `limit` events whose fold failed: (event_id, experiment, event_type, error,
        failed_at ms), newest first (experiment and event type None for an event no longer stored)."""
        query = (select(fold_failed.c.event_id, events.c.experiment, events.c.event_type, fold_failed.c.error,
                        fold_failed.c.failed_at)
                 .select_from(fold_failed.outerjoin(events, events.c.event_id == fold_failed.c.event_id))
                 .order_by(fold_failed.c.failed_at.desc(), fold_failed.c.event_id).limit(limit))
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def _fold_queued(self, conn: Connection, limit: int, upto: int | None,
                     after: int | None = None) -> tuple[int, Callable[[], None]]:
        query = select(fold_queue.c.seq, fold_queue.c.event_id).order_by(fold_queue.c.seq).limit(limit)
        if upto is not None:
            query = query.where(fold_queue.c.seq <= upto)
        if after is not None:
            query = query.where(fold_queue.c.seq > after)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        taken = conn.execute(query).all()
        if not taken:
            return 0, lambda: None
        delete_rows(conn, fold_queue.name, ("seq",), [(seq,) for seq, _ in taken])
        dimensions = [event_context.c[name] for name in DIMENSIONS]
        found = find_rows(conn, events.name, ("event_id",), EventRow._fields, [(event_id,) for _, event_id in taken])
        contexts = {row[0]: tuple(row[1:]) for row in find_rows(
            conn, event_context.name, ("event_id",), ("event_id", *(c.name for c in dimensions)),
            [(event_id,) for _, event_id in taken])}
        order = {event_id: seq for seq, event_id in taken}
        counted = sorted((EventRow(*row) for row in found), key=lambda row: order[row.event_id])
        exposed = [row for row in counted if row.event_id in contexts]

        def metric_sums(old: dict, changed: dict) -> None:
            metric_tables.apply(conn, counted, newly_exposed(old, changed))

        remember = aggregates.apply(conn, [Counted(*row[1:6]) for row in counted], self._known,
                                    [Exposure(row.experiment, row.variant, row.visitor_id, row.ts, row.event_id,
                                              contexts[row.event_id]) for row in exposed], metric_sums)
        return len(taken), remember

    def _fold(self, conn: DriverConnection, contexts: list[Context]) -> tuple[list[Context], Callable[[], None]]:
        """The contexts with each value a dimension does not keep replaced by OTHER. A new value is kept
        while its dimension holds fewer than segment_limit values (counted under a lock per dimension
        on PostgreSQL; SQLite's write lock is held already). Returns what to remember after commit."""
        wanted = {(name, value) for context in contexts for name, value in zip(DIMENSIONS, context, strict=True)
                  if value is not None}
        unknown = sorted(wanted - self._admitted - self._refused)
        key = ("dimension", "value")
        found = set(find_rows(conn, segment_values.name, key, key, unknown)) if unknown else set()
        full = set()
        for name in sorted({name for name, _ in unknown} - self._full):
            missing = [pair for pair in unknown if pair[0] == name and pair not in found]
            if not missing:
                continue
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"segment_values:{name}",))
                found |= set(find_rows(conn, segment_values.name, key, key, missing))
                missing = [pair for pair in missing if pair not in found]
            [(kept,)] = conn.exec_driver_sql(
                f"SELECT count(*) FROM {segment_values.name} WHERE dimension = {param_mark(conn)}", (name,))
            admitted = missing[:max(0, self.segment_limit - kept)]
            insert_rows(conn, segment_values.name, key, admitted)
            found.update(admitted)
            if kept + len(admitted) >= self.segment_limit:
                full.add(name)
        # a full dimension keeps no new value: what it does not keep now, it never will
        refused = {pair for pair in unknown if pair not in found and pair[0] in self._full | full}
        keep = self._admitted | found
        folded = [tuple(value if value is None or (name, value) in keep else OTHER
                        for name, value in zip(DIMENSIONS, context, strict=True)) for context in contexts]

        def remember() -> None:
            self._admitted.update(found)
            self._full.update(full)
            if len(self._refused) > MEMORY_VISITORS:  # a bounded memory: forgetting costs a look-up
                self._refused.clear()
            self._refused.update(refused)

        return folded, remember

    def rebuild_aggregates(self) -> None:
        """Every aggregate made again from the stored events (which the queue's entries and the events
        whose fold failed are among: counted by the rebuild, they leave the queue and fold_failed in the
        same transaction)."""
        registered = select(metric_tables.event_types.c.key)
        with self.engine.begin() as conn:
            conn.execute(delete(fold_queue))
            conn.execute(delete(fold_failed))
            aggregates.rebuild(conn, events, event_context, registered)
            metric_tables.rebuild(conn, events, counts(events, registered))
        if self.engine.dialect.name == "postgresql":
            # Every aggregate was rewritten: the planner's statistics describe the tables before. Until
            # autovacuum analyzes them, readouts may take plans for empty tables (seconds, not ms).
            rebuilt = (*aggregates.tables, metric_tables.visitor_values, metric_tables.agg_metric)
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"ANALYZE {', '.join(table.name for table in rebuilt)}")

    @settled
    def count_events(self, flt: EventFilter = EventFilter()) -> int:
        """Counted (not excluded) events matching the filter."""
        table, conditions = self._event_table(flt)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(table.c.events), 0)).where(
                and_(True, *conditions))).scalar_one())

    @staticmethod
    def _event_table(flt: EventFilter) -> tuple[Table, list]:
        """Events per hour, agg_events or agg_event_segments for a segment filter, and the filter's
        conditions on it (a segment's rows emptied by visitors moving out stay, at zero: left out)."""
        if flt.segment is None:
            table, conditions = aggregates.agg_events, []
        else:
            table = aggregates.agg_event_segments
            conditions = [*flt.in_segment(table), table.c.events != 0]
        conditions += flt.keys(table) + flt.window(table.c.hour)
        if flt.event_type:
            conditions.append(table.c.event_type == flt.event_type)
        return table, conditions

    @staticmethod
    def _cohort_table(flt: EventFilter, dimension: str | None = None) -> tuple[Table, list]:
        """agg_cohorts, or agg_segments (with its conditions) for a segment filter or a breakdown."""
        if flt.segment is None and dimension is None:
            return aggregates.agg_cohorts, []
        table = aggregates.agg_segments
        if dimension is not None:
            return table, [table.c.dimension == dimension]
        return table, flt.in_segment(table)

    def _cohort_sums(self, flt: EventFilter, group_by: bool, dimension: str | None = None,
                     **measures: int) -> list[dict[str, Any]]:
        """Visitors from agg_cohorts (agg_segments with a segment or a dimension to break down by),
        per variant (or overall) and value, whose mask holds each measure's bits."""
        table, conditions = self._cohort_table(flt, dimension)
        conditions += flt.scope(table, group_by) + flt.window(table.c.cohort_hour)
        if flt.event_type:
            conditions.append(has(table.c.mask, event_bit(flt.event_type)))
        columns = [func.coalesce(func.sum(case((has(table.c.mask, bits), table.c.visitors), else_=0)), 0).label(name)
                   for name, bits in measures.items()]
        keys = ([table.c.value] if dimension else []) + ([table.c.variant] if group_by else [])
        query = select(*keys, *columns).where(and_(True, *conditions))
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        with self.engine.connect() as conn:
            return [{k: (v if k in ("variant", "value") else int(v or 0)) for k, v in row.items()}
                    for row in conn.execute(query).mappings()]

    @settled
    def matrix(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events and unique visitors per (variant, event_type)."""
        table, conditions = self._event_table(flt)
        query = (select(table.c.variant, table.c.event_type, func.sum(table.c.events).label("events"))
                 .where(and_(True, *conditions)).group_by(table.c.variant, table.c.event_type)
                 .order_by(table.c.variant, table.c.event_type))
        with self.engine.connect() as conn:
            cells = [dict(row) for row in conn.execute(query).mappings()]
        types = sorted({c["event_type"] for c in cells})
        visitors = {row["variant"]: row for row in self._cohort_sums(
            flt, True, **{t: EVENT_BITS[t] for t in types if t in EVENT_BITS})}
        registered = self.registered_type_visitors(flt, [t for t in types if t not in EVENT_BITS], True)
        return [{"variant": c["variant"], "event_type": c["event_type"], "events": int(c["events"]),
                 "visitors": visitors.get(c["variant"], {}).get(c["event_type"], 0)
                 or registered.get((c["variant"], c["event_type"]), 0)} for c in cells]

    @settled
    def registered_type_visitors(self, flt: EventFilter, types: Sequence[str], by_variant: bool) -> dict[tuple, int]:
        """Visitors with each registered (non-built-in) event type, per (variant or None, type), counted
        by their cohort as the built-in types are: from the per-visitor rows of metric_aggregates (the
        visitor masks keep one bit for all registered types), so the cost grows with those visitors.
        With a segment, the visitors whose context at the level of that state is in it."""
        if not types:
            return {}
        values, state = metric_tables.visitor_values, aggregates.visitor_state
        scope = state.c.experiment == (flt.experiment or ANY)
        same_variant = state.c.variant == (values.c.variant if flt.experiment or by_variant or flt.variant else ANY)
        conditions = [values.c.event_type.in_(list(types)), *flt.keys(values),
                      *flt.window(state.c.first_ts - state.c.first_ts % HOUR_MS)]
        variant = values.c.variant if by_variant else literal(None).label("variant")
        joined = values.join(state, and_(state.c.visitor_id == values.c.visitor_id, scope, same_variant,
                                         *([state.c.experiment == values.c.experiment] if flt.experiment else [])))
        if flt.segment is not None:
            context = aggregates.visitor_context
            joined = joined.join(context, and_(*(context.c[k] == state.c[k]
                                                 for k in ("experiment", "variant", "visitor_id"))))
            dimension, value = flt.segment
            conditions.append(context.c[dimension].is_(None) if value == NONE else context.c[dimension] == value)
        query = (select(variant, values.c.event_type, func.count(values.c.visitor_id.distinct()).label("visitors"))
                 .select_from(joined)
                 .where(*conditions).group_by(*([values.c.variant] if by_variant else []), values.c.event_type))
        with self.engine.connect() as conn:
            return {(r.variant, r.event_type): int(r.visitors) for r in conn.execute(query)}

    @settled
    def unique_visitors(self, flt: EventFilter, group_by: str | None = None) -> dict[str | None, int]:
        """Distinct visitors overall (key None) or per variant / event_type."""
        if flt.event_type is not None and flt.event_type not in EVENT_BITS:
            # a registered type shares its mask bit with the others: its visitors are counted from their own rows
            found = self.registered_type_visitors(flt, [flt.event_type], group_by == "variant")
            if group_by is None:
                return {None: sum(found.values())}
            return {variant if group_by == "variant" else event_type: n
                    for (variant, event_type), n in found.items() if n}
        if group_by == "event_type":
            [row] = self._cohort_sums(flt, False, **EVENT_BITS)
            registered = self.registered_type_visitors(flt, self._registered_types(flt), False)
            return {t: n for t, n in row.items() if n} | {t: n for (_, t), n in registered.items() if n}
        rows = self._cohort_sums(flt, group_by == "variant", visitors=0)
        if group_by == "variant":
            return {row["variant"]: row["visitors"] for row in rows}
        return {None: rows[0]["visitors"]}

    @settled
    def exposure_conversions(self, flt: EventFilter, metrics: Sequence[str], dimension: str | None = None,
                             by_variant: bool = True) -> list[dict[str, Any]]:
        """Per variant (and value of `dimension`, when given): visitors with a page_view, and how many of
        them also have each metric event."""
        exposure = replace(flt, event_type=None)
        measures = {"visitors": EVENT_BITS[EXPOSURE], **{m: EVENT_BITS[EXPOSURE] | EVENT_BITS[m] for m in metrics}}
        return self._cohort_sums(exposure, by_variant, dimension, **measures)

    def _registered_types(self, flt: EventFilter) -> list[str]:
        """The registered (non-built-in) event types with events under the filter's keys."""
        table = aggregates.agg_events
        with self.engine.connect() as conn:
            return [t for t in conn.execute(select(table.c.event_type).where(*flt.keys(table)).distinct()).scalars()
                    if t not in EVENT_BITS]

    @settled
    def funnel(self, flt: EventFilter, steps: Sequence[str]) -> list[dict[str, Any]]:
        """Per variant: visitors who reached each step having reached every step before it."""
        plain = replace(flt, event_type=None)
        measures, bits = {}, 0
        for step in steps:
            bits |= EVENT_BITS[step]
            measures[step] = bits
        return self._cohort_sums(plain, True, **measures)

    @settled
    def timeseries(self, flt: EventFilter, interval_ms: int) -> list[dict[str, Any]]:
        """Events and unique visitors per (time bucket, variant); bucket = start of the interval in ms."""
        table, conditions = self._event_table(flt)
        bucket = (table.c.hour - table.c.hour % interval_ms).label("bucket")
        events_query = (select(bucket, table.c.variant, func.sum(table.c.events).label("events"))
                        .where(and_(True, *conditions)).group_by(bucket, table.c.variant))
        active = aggregates.agg_active if flt.segment is None else aggregates.agg_active_segments
        kind = "d" if interval_ms >= DAY_MS else "h"
        visitors_query = select(active.c.period, active.c.variant, active.c.visitors).where(
            and_(active.c.kind == kind, active.c.event_type == (flt.event_type or ANY_TYPE),
                 *flt.scope(active, True), *flt.in_segment(active), *flt.window(active.c.period)))
        with self.engine.connect() as conn:
            counts = {(r.bucket, r.variant): int(r.events) for r in conn.execute(events_query)}
            visitors = {(r.period, r.variant): int(r.visitors) for r in conn.execute(visitors_query)}
        return [{"bucket": b, "variant": v, "events": n, "visitors": visitors.get((b, v), 0)}
                for (b, v), n in sorted(counts.items())]

    @settled
    def cohorts(self, flt: EventFilter, metric: str) -> list[tuple[str, int, int, int]]:
        """Per (variant, cohort hour): visitors exposed (page_view) and how many of them converted."""
        table, conditions = self._cohort_table(flt)
        exposed = EVENT_BITS[EXPOSURE]
        converted = exposed | EVENT_BITS[metric]
        query = (select(table.c.variant, table.c.cohort_hour,
                        func.sum(case((has(table.c.mask, exposed), table.c.visitors), else_=0)).label("exposed"),
                        func.sum(case((has(table.c.mask, converted), table.c.visitors), else_=0)).label("converted"))
                 .where(and_(True, *conditions, *flt.scope(table, True), *flt.window(table.c.cohort_hour)))
                 .group_by(table.c.variant, table.c.cohort_hour)
                 .order_by(table.c.variant, table.c.cohort_hour))
        with self.engine.connect() as conn:
            return [(r.variant, int(r.cohort_hour), int(r.exposed), int(r.converted)) for r in conn.execute(query)]

    # Export -------------------------------------------------------------------------------------------

    @staticmethod
    def event_columns() -> list[Column]:
        """What an event export carries: every column of the raw events table, in order, then an
        exposure's context (its dimensions; empty for other events)."""
        return [*events.c, *(column for column in event_context.c if column.name != "event_id")]

    def event_page(self, after: int, limit: int, experiment: str | None = None, since_ms: int | None = None,
                   until_ms: int | None = None) -> list[tuple]:
        """Up to `limit` raw events with an id above `after`, in id order (keyset pagination: each page
        is one short read, whatever the table's size); `since` inclusive, `until` exclusive, exact."""
        conditions = [events.c.id > after]
        if experiment is not None:
            conditions.append(events.c.experiment == experiment)
        # `ts + 0`: walk the primary key in order and test the time on the way, rather than let the
        # planner read the time index and sort every match for each page.
        if since_ms is not None:
            conditions.append(events.c.ts + 0 >= since_ms)
        if until_ms is not None:
            conditions.append(events.c.ts + 0 < until_ms)
        query = (select(*self.event_columns())
                 .select_from(events.outerjoin(event_context, event_context.c.event_id == events.c.event_id))
                 .where(*conditions).order_by(events.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    @staticmethod
    def visitor_columns() -> list[str]:
        """The columns of visitor_rows: the visitor's variant and id, the time of their first counted
        event (their cohort), then per event type the number of events and the time of the first."""
        return ["variant", "visitor_id", "first_ts",
                *(f"{t}_{part}" for t in EVENT_TYPES for part in ("events", "first_ts"))]

    def visitor_rows(self, experiment: str, after: tuple[str, str] | None = None,
                     chunk: int = 2000) -> Iterator[list[tuple]]:
        """The experiment's visitors as the readouts count them (counted events only), one row per
        (variant, visitor) in that order after `after`, in lists of up to `chunk` rows. One read,
        grouped by the database and fetched a chunk at a time."""
        per_type = []
        for event_type in EVENT_TYPES:
            is_type = events.c.event_type == event_type
            per_type += [func.sum(case((is_type, 1), else_=0)), func.min(case((is_type, events.c.ts)))]
        conditions = [events.c.experiment == experiment, counts(events)]
        if after is not None:
            conditions.append(tuple_(events.c.variant, events.c.visitor_id) > tuple_(*after))
        query = (select(events.c.variant, events.c.visitor_id, func.min(events.c.ts), *per_type)
                 .where(*conditions).group_by(events.c.variant, events.c.visitor_id)
                 .order_by(events.c.variant, events.c.visitor_id))
        with self.engine.connect() as conn:
            for part in conn.execution_options(yield_per=chunk).execute(query).partitions():
                yield [tuple(row) for row in part]

    # Retention ----------------------------------------------------------------------------------------

    def delete_events_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete up to `limit` raw events older than cutoff_ms, with their contexts, in one short write
        transaction; how many were deleted. The aggregates are left as they are: they still count the
        deleted events. An event still queued for folding is kept until it is folded, one whose fold
        failed (fold_failed) until a rebuild counts it."""
        queued = select(fold_queue.c.seq).where(fold_queue.c.event_id == events.c.event_id).exists()
        failed = select(fold_failed.c.event_id).where(fold_failed.c.event_id == events.c.event_id).exists()

        def work(conn: Connection) -> int:
            oldest = conn.execute(select(events.c.id, events.c.event_id).where(events.c.ts < cutoff_ms, ~queued,
                                                                               ~failed).limit(limit)).all()
            if oldest:
                conn.execute(delete(event_context).where(event_context.c.event_id.in_([r.event_id for r in oldest])))
                conn.execute(delete(events).where(events.c.id.in_([r.id for r in oldest])))
            return len(oldest)

        return run_write(self.engine, work)

    def claim_job(self, name: str, holder: str, now_ms: int, lease_ms: int) -> bool:
        """Take the job `name` for lease_ms when it is due and nobody holds it; True when taken. One
        conditional UPDATE: of several workers or instances, exactly one sees its row change."""
        def work(conn: Connection) -> bool:
            conn.execute(insert_ignore(conn, job_leases).values(name=name, holder=None, lease_until=0, next_run=0))
            taken = conn.execute(update(job_leases).where(
                job_leases.c.name == name, job_leases.c.next_run <= now_ms, job_leases.c.lease_until <= now_ms,
            ).values(holder=holder, lease_until=now_ms + lease_ms))
            return taken.rowcount == 1

        return run_write(self.engine, work)

    def renew_job(self, name: str, holder: str, now_ms: int, lease_ms: int) -> bool:
        """Extend a lease still held; False when it ran out and another holder has it."""
        def work(conn: Connection) -> bool:
            return conn.execute(update(job_leases).where(
                job_leases.c.name == name, job_leases.c.holder == holder,
            ).values(lease_until=now_ms + lease_ms)).rowcount == 1

        return run_write(self.engine, work)

    def finish_job(self, name: str, holder: str, next_run_ms: int) -> None:
        """Release the lease and set when the job is next due."""
        run_write(self.engine, lambda conn: conn.execute(update(job_leases).where(
            job_leases.c.name == name, job_leases.c.holder == holder,
        ).values(holder=None, lease_until=0, next_run=next_run_ms)))


class Folder:
    """The background thread of start_folding. It holds its store weakly: a store no longer used
    (an app dropped, in tests) lets the thread end."""

    def __init__(self, store: MetricsStore, delay: float, poll: float):
        self._store = weakref.ref(store)
        self.delay, self.poll = delay, poll
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fold-aggregates", daemon=True)

    def start(self) -> Folder:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stopped.is_set():
            if self._woken.wait(self.poll):
                self._stopped.wait(self.delay)  # let more gather
            self._woken.clear()
            store = self._store()
            if store is None or self._stopped.is_set():
                return
            try:
                store.settle()
            except Exception:  # noqa: BLE001 - the database is away: queued events wait, nothing is lost
                log.exception("folding queued events into the aggregates failed; trying again later")
            del store
