"""Aggregates kept at ingest so every stats query reads small tables, not the raw event log.

- agg_events:      events per (experiment, variant, event_type, hour)
- visitor_state:   per (experiment, variant, visitor): time of the first counted event and the set
                   of event types seen, as a bit mask (page_view 1, cta_click 2, form_submit 4)
- agg_cohorts:     visitors per (experiment, variant, cohort hour = hour of first event, mask)
- visitor_periods: which (visitor, event type or "*", hour or day) pairs have been seen
- agg_active:      distinct visitors per (experiment, variant, event type or "*", hour or day)
- visitor_context: per (experiment, variant, visitor): the context (device, utm_source, ... see
                   core.events.DIMENSIONS) of their earliest exposure (by time, then event id)
- agg_segments:    visitors per (experiment, variant, dimension, value, cohort hour, mask): agg_cohorts
                   per segment, for the visitors with a context ("(none)" where a dimension has no value)
- visitor_events:  events per (experiment, variant, visitor, event_type, hour): what moves between
                   segments when a visitor's context changes
- agg_event_segments:  agg_events per segment: events per (experiment, variant, dimension, value,
                   event_type, hour), each event in the segment of its visitor's context in its experiment
- agg_active_segments: agg_active per segment: distinct visitors per (experiment, variant, dimension,
                   value, event type or "*", hour or day), each in the segment of their context at that level

The per-visitor tables (and so agg_cohorts and agg_active) also keep each visitor once across
experiments, under experiment "*": per variant (experiment "*", the variant) and, for the states and
cohorts, overall (experiment and variant "*"). Queries without an experiment read those, so a
visitor in several experiments counts once. ("*" is never an experiment's or a variant's name.)

Every change is applied in the ingest transaction, from the rows that were newly stored, so the
aggregates stay exactly what `rebuild` computes from the raw events (a test compares the two). When a
visitor's context arrives, or an earlier exposure replaces it, the visitor's counted events and
periods already stored move from the segments of the old context to those of the new one. What
a process remembers having written, to skip it next time, is in visitor_memory.py.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)

from core.db import find_rows, insert_new, insert_rows, upsert_rows
from core.events import CUSTOM_BIT, DIMENSIONS, EVENT_BITS, EXPOSURE, event_bit
from metrics_service.series import DAY_MS, HOUR_MS, bucket_start

if TYPE_CHECKING:
    from metrics_service.visitor_memory import Known

PERIODS = {"h": HOUR_MS, "d": DAY_MS}
ANY_TYPE = "*"
COUNTABLE_MS = (0, 253_402_300_799_999)  # 1970 up to the last millisecond a datetime can hold (9999)
ANY = "*"  # every experiment, every variant
NONE = "(none)"  # a segment's value where the exposure's context has none (no utm_source: direct traffic...)


def event_deltas(rows: Iterable[Counted]) -> Counter:
    return Counter((experiment, variant, event_type, ts - ts % HOUR_MS)
                   for experiment, variant, event_type, _, ts in rows)


def batch_states(rows: Iterable[Counted]) -> dict[tuple, tuple[int, int]]:
    """Per (experiment, variant, visitor): the batch's earliest time and its event-type mask."""
    states: dict[tuple, tuple[int, int]] = {}
    for experiment, variant, event_type, visitor_id, ts in rows:
        key = (experiment, variant, visitor_id)
        before = states.get(key)
        states[key] = (ts, event_bit(event_type)) if before is None else (
            min(before[0], ts), before[1] | event_bit(event_type))
    return states


def widen(states: dict[tuple, tuple[int, int]]) -> dict[tuple, tuple[int, int]]:
    """The same visitors' states across experiments: per (ANY, variant, visitor) and (ANY, ANY,
    visitor), each the earliest time and all the event types of the states it gathers (pure)."""
    wide: dict[tuple, tuple[int, int]] = {}
    for (_, variant, visitor), (first, mask) in states.items():
        for key in ((ANY, variant, visitor), (ANY, ANY, visitor)):
            before = wide.get(key)
            wide[key] = (first, mask) if before is None else (min(before[0], first), before[1] | mask)
    return wide


def cohort_deltas(old: dict[tuple, tuple[int, int]], batch: dict[tuple, tuple[int, int]]
                  ) -> tuple[Counter, dict[tuple, tuple[int, int]]]:
    """Moves in agg_cohorts caused by a batch, and the visitors' new states (pure)."""
    deltas: Counter = Counter()
    changed = {}
    for key, (first, mask) in batch.items():
        before = old.get(key)
        after = (first, mask) if before is None else (min(before[0], first), before[1] | mask)
        if before == after:
            continue
        experiment, variant, _ = key
        if before is not None:
            deltas[(experiment, variant, bucket_start(before[0], HOUR_MS), before[1])] -= 1
        deltas[(experiment, variant, bucket_start(after[0], HOUR_MS), after[1])] += 1
        changed[key] = after
    return deltas, changed


class Exposure(NamedTuple):
    """A newly stored, counted exposure with a context: its values in DIMENSIONS order (None: none)."""

    experiment: str
    variant: str
    visitor_id: str
    ts: int
    event_id: str
    values: tuple[str | None, ...]


def earliest_contexts(exposures: Iterable[Exposure]) -> dict[tuple, tuple]:
    """Per (experiment, variant, visitor), and across experiments as the per-visitor tables keep
    them, the (time, event id, values) of the batch's earliest exposure (pure)."""
    earliest: dict[tuple, tuple] = {}
    for x in exposures:
        context = (x.ts, x.event_id, x.values)
        for key in ((x.experiment, x.variant, x.visitor_id), (ANY, x.variant, x.visitor_id), (ANY, ANY, x.visitor_id)):
            before = earliest.get(key)
            if before is None or context[:2] < before[:2]:
                earliest[key] = context
    return earliest


def segment_deltas(old_states: dict[tuple, tuple[int, int]], new_states: dict[tuple, tuple[int, int]],
                   old_contexts: dict[tuple, tuple], batch_contexts: dict[tuple, tuple]
                   ) -> tuple[dict[tuple, tuple], Counter]:
    """The contexts to store (those the batch makes earlier or gives for the first time) and the moves
    in agg_segments: a visitor leaves the segments of their old (state, context) and enters those of
    the new one (pure)."""
    store: dict[tuple, tuple] = {}
    deltas: Counter = Counter()
    # a key without a context before or after is in no segment either way
    for key in {key for key in new_states if key in old_contexts} | set(batch_contexts):
        before_context = after_context = old_contexts.get(key)
        candidate = batch_contexts.get(key)
        if candidate is not None and (before_context is None or candidate[:2] < before_context[:2]):
            after_context = store[key] = candidate
        before_state = old_states.get(key)
        after_state = new_states.get(key, before_state)
        if before_context == after_context and before_state == after_state:
            continue
        experiment, variant, _ = key
        for state, context, sign in ((before_state, before_context, -1), (after_state, after_context, 1)):
            if state is None or context is None:
                continue
            hour = bucket_start(state[0], HOUR_MS)
            for dimension, value in zip(DIMENSIONS, context[2], strict=True):
                deltas[(experiment, variant, dimension, value or NONE, hour, state[1])] += sign
    return store, deltas


def visitor_event_deltas(rows: Iterable[Counted]) -> Counter:
    """Per (experiment, variant, visitor, event_type, hour): the batch's events (pure)."""
    return Counter((experiment, variant, visitor_id, event_type, ts - ts % HOUR_MS)
                   for experiment, variant, event_type, visitor_id, ts in rows)


def by_segment(counts: Iterable[tuple[tuple, int]], contexts: dict[tuple, tuple], sign: int = 1,
               into: Counter | None = None) -> Counter:
    """Per-visitor counts, ((experiment, variant, visitor, *rest), n), spread over the segments of each
    visitor's context (`contexts`: values in DIMENSIONS order per (experiment, variant, visitor)):
    (experiment, variant, dimension, value, *rest) += sign * n. Visitors without a context are in no
    segment (pure)."""
    grouped: Counter = Counter()  # visitors who share a context share their rows: spread each group once
    context_of = contexts.get
    for key, n in counts:
        values = context_of(key[:3])
        if values is not None:
            grouped[key[0], key[1], values, key[3:]] += n
    moves = Counter() if into is None else into
    for (experiment, variant, values, rest), n in grouped.items():
        for dimension, value in zip(DIMENSIONS, values, strict=True):
            moves[(experiment, variant, dimension, value or NONE, *rest)] += sign * n
    return moves


def moved_counts(rows: Iterable[tuple], before: dict[tuple, tuple], after: dict[tuple, tuple]) -> Counter:
    """The moves of stored per-visitor rows, ((experiment, variant, visitor, *rest), n), whose visitor's
    context changed from `before` (absent: none) to `after`: out of the old segments, into the new (pure)."""
    rows = list(rows)
    return by_segment(rows, after, 1, by_segment(rows, before, -1))


class Counted(NamedTuple):
    """A newly stored event that counts (not excluded): what the aggregates are made of (the
    fields of core.events.EventRow that matter, in the same order)."""

    experiment: str
    variant: str
    event_type: str
    visitor_id: str
    ts: int


class Aggregates:
    """The aggregate tables, and how a batch of new events changes them. The statements are plain
    SQL in each driver's parameter style, so a batch costs a fixed handful of round trips and no
    statement building."""

    def __init__(self, metadata: MetaData):
        def segment_first(*rest):
            """A segment's rows together, whatever their variant: one segment's query names the
            experiment, the dimension and the value."""
            return PrimaryKeyConstraint("experiment", "dimension", "value", "variant", *rest)

        def keyed(*columns):
            return [Column("experiment", String(64), primary_key=True),
                    Column("variant", String(64), primary_key=True), *columns]

        self.agg_events = Table("agg_events", metadata, *keyed(
            Column("event_type", String(32), primary_key=True), Column("hour", BigInteger, primary_key=True),
            Column("events", BigInteger, nullable=False)))
        self.visitor_state = Table("visitor_state", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("first_ts", BigInteger, nullable=False),
            Column("mask", Integer, nullable=False)), sqlite_with_rowid=False)
        self.agg_cohorts = Table("agg_cohorts", metadata, *keyed(
            Column("cohort_hour", BigInteger, primary_key=True), Column("mask", Integer, primary_key=True),
            Column("visitors", BigInteger, nullable=False)))
        self.visitor_periods = Table("visitor_periods", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("event_type", String(32), primary_key=True),
            Column("kind", String(1), primary_key=True), Column("period", BigInteger, primary_key=True)),
            sqlite_with_rowid=False)
        self.agg_active = Table("agg_active", metadata, *keyed(
            Column("event_type", String(32), primary_key=True), Column("kind", String(1), primary_key=True),
            Column("period", BigInteger, primary_key=True), Column("visitors", BigInteger, nullable=False)))
        self.visitor_context = Table("visitor_context", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("exposed_ts", BigInteger, nullable=False),
            Column("event_id", String(36), nullable=False),
            *(Column(name, String(64), nullable=True) for name in DIMENSIONS)), sqlite_with_rowid=False)
        self.agg_segments = Table("agg_segments", metadata, *keyed(
            Column("dimension", String(32), primary_key=True), Column("value", String(64), primary_key=True),
            Column("cohort_hour", BigInteger, primary_key=True), Column("mask", Integer, primary_key=True),
            Column("visitors", BigInteger, nullable=False), segment_first("cohort_hour", "mask")))
        self.visitor_events = Table("visitor_events", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("event_type", String(32), primary_key=True),
            Column("hour", BigInteger, primary_key=True), Column("events", BigInteger, nullable=False)),
            sqlite_with_rowid=False)
        self.agg_event_segments = Table("agg_event_segments", metadata, *keyed(
            Column("dimension", String(32), primary_key=True), Column("value", String(64), primary_key=True),
            Column("event_type", String(32), primary_key=True), Column("hour", BigInteger, primary_key=True),
            Column("events", BigInteger, nullable=False), segment_first("event_type", "hour")))
        self.agg_active_segments = Table("agg_active_segments", metadata, *keyed(
            Column("dimension", String(32), primary_key=True), Column("value", String(64), primary_key=True),
            Column("event_type", String(32), primary_key=True), Column("kind", String(1), primary_key=True),
            Column("period", BigInteger, primary_key=True), Column("visitors", BigInteger, nullable=False),
            segment_first("event_type", "kind", "period")))
        # what each rebuild recomputes: from the events alone; from the exposures' contexts too (since
        # m0005); the events per segment (since m0008)
        self.event_tables = (self.agg_events, self.visitor_state, self.agg_cohorts, self.visitor_periods,
                             self.agg_active)
        self.segment_tables = (self.visitor_context, self.agg_segments)
        self.event_segment_tables = (self.visitor_events, self.agg_event_segments, self.agg_active_segments)
        self.tables = self.event_tables + self.segment_tables + self.event_segment_tables
        # the columns of the rows the hot path writes, in order
        self.state_columns = tuple(self.visitor_state.c.keys())  # experiment, variant, visitor_id, first_ts, mask
        self.period_columns = tuple(self.visitor_periods.c.keys())  # experiment .. visitor_id, event_type, kind, period
        self.context_columns = tuple(self.visitor_context.c.keys())  # experiment .. exposed_ts, event_id, dimensions

    @staticmethod
    def _add(conn: Connection, table: Table, keys: Sequence[str], value: str, deltas: Counter) -> None:
        """Upsert value += delta for each key (upsert_rows writes them in key order on PostgreSQL)."""
        rows = [(*k, d) for k, d in deltas.items() if d]
        upsert_rows(conn, table.name, (*keys, value), keys, rows, f"{value} = {table.name}.{value} + excluded.{value}")

    def apply(self, conn: Connection, rows: Sequence[Counted], known: Known,
              exposures: Sequence[Exposure] = (),
              on_states: Callable[[dict, dict], None] | None = None) -> Callable[[], None]:
        """Fold newly stored, counted events (and the contexts of the exposures among them) into every
        aggregate (inside the ingest transaction). `on_states(old, changed)` is called once the visitor
        states are written (their rows locked), with the states before and after of the visitors that
        changed. Returns what to call once the transaction has committed (it remembers the rows written)."""
        if not rows:
            return lambda: None
        self._add(conn, self.agg_events, ("experiment", "variant", "event_type", "hour"), "events",
                  event_deltas(rows))

        # Visitor states first: on PostgreSQL this locks each visitor's row, so the period rows
        # below are written by one instance at a time per visitor. A visitor's rows across
        # experiments gather their rows in each, so they change only where one of those changes: a
        # batch that changes nothing the worker knows of needs no look-up of them either.
        states = batch_states(rows)
        batch = known.unknown_states(states)
        # a visitor whose context may change needs their state, whatever the memory says
        batch.update({key: states[key] for key in {x[:3] for x in exposures}})
        batch.update(widen(batch))
        old = self._lock_states(conn, list(batch), {vid for _, _, vid in states})
        deltas, changed = cohort_deltas(old, batch)
        upsert_rows(conn, self.visitor_state.name, self.state_columns, self.state_columns[:3],
                    [(*k, first, mask) for k, (first, mask) in changed.items()],
                    "first_ts = excluded.first_ts, mask = excluded.mask")
        self._add(conn, self.agg_cohorts, ("experiment", "variant", "cohort_hour", "mask"), "visitors", deltas)
        # the contexts of every visitor of the batch, at the levels events and periods are kept
        levels = [*states, *{(ANY, v, vid) for _, v, vid in states}]
        before, after = self._segments(conn, old, batch, changed, earliest_contexts(exposures), levels)
        active_moves = self._event_segments(conn, rows, old, before, after)
        if on_states is not None:
            on_states(old, changed)

        # A visitor with no counted event before this batch has no period rows yet: theirs are
        # all new and need no look-up (on PostgreSQL no other transaction writes them meanwhile:
        # the visitor's state is locked). Everyone else's go through insert_new.
        first_timers = {k for k in batch if k not in old}
        periods = known.unknown_periods(rows)
        fresh: list[tuple] = []
        rest: list[tuple] = []
        for period in periods | {(ANY, v, vid, t, kind, p) for _, v, vid, t, kind, p in periods}:
            (fresh if period[:3] in first_timers else rest).append(period)
        insert_rows(conn, self.visitor_periods.name, self.period_columns, fresh)
        fresh += insert_new(conn, self.visitor_periods.name, self.period_columns, rest, key=self.period_columns)
        self._add(conn, self.agg_active, ("experiment", "variant", "event_type", "kind", "period"), "visitors",
                  Counter((e, v, t, k, p) for e, v, _, t, k, p in fresh))
        if after:
            by_segment(((p, 1) for p in fresh), after, into=active_moves)
        self._add(conn, self.agg_active_segments,
                  ("experiment", "variant", "dimension", "value", "event_type", "kind", "period"), "visitors",
                  active_moves)

        def remember() -> None:
            known.remember({k: state for k, state in {**old, **changed}.items() if k[0] != ANY}, periods)

        return remember

    def _segments(self, conn: Connection, old: dict[tuple, tuple[int, int]], looked_up: dict[tuple, Any],
                  changed: dict[tuple, tuple[int, int]], batch_contexts: dict[tuple, tuple], levels: Sequence[tuple]
                  ) -> tuple[dict, dict]:
        """Move the visitors whose state or context changed between segments (under the visitors' locks).
        Returns the contexts' values, before and after the batch, of those visitors and of `levels`
        (those without a context left out). `looked_up`: the keys whose states were read (`old`: those
        found); a context is stored only beside a state, so only the keys found, or not read (the
        memory knows their state), can have one."""
        keys = [key for key in {*changed, *batch_contexts, *levels} if key in old or key not in looked_up]
        columns = self.context_columns
        old_contexts = {tuple(row[:3]): (row[3], row[4], tuple(row[5:]))
                        for row in find_rows(conn, self.visitor_context.name, columns[:3], columns, keys)}
        store, deltas = segment_deltas(old, changed, old_contexts, batch_contexts)
        upsert_rows(conn, self.visitor_context.name, columns, columns[:3],
                    [(*key, ts, event_id, *values) for key, (ts, event_id, values) in store.items()],
                    ", ".join(f"{name} = excluded.{name}" for name in columns[3:]))
        self._add(conn, self.agg_segments, ("experiment", "variant", "dimension", "value", "cohort_hour", "mask"),
                  "visitors", deltas)
        before = {key: context[2] for key, context in old_contexts.items()}
        return before, {**before, **{key: context[2] for key, context in store.items()}}

    def _event_segments(self, conn: Connection, rows: Sequence[Counted], old: dict[tuple, tuple[int, int]],
                        before: dict[tuple, tuple], after: dict[tuple, tuple]) -> Counter:
        """Count the batch's events per visitor and per segment; move the stored events and periods of
        the visitors whose context changed. Returns the moves in agg_active_segments so far (the
        batch's new periods are added once they are known)."""
        moved = sorted(key for key, values in after.items()
                       if before.get(key) != values and key in old and key[1] != ANY)  # visitors with rows stored
        batch = visitor_event_deltas(rows)
        event_moves = by_segment(batch.items(), after)
        active_moves: Counter = Counter()
        if moved:
            columns = tuple(self.visitor_events.c.keys())  # experiment .. visitor_id, event_type, hour, events
            stored = find_rows(conn, self.visitor_events.name, columns[:3], columns, [k for k in moved if k[0] != ANY])
            event_moves.update(moved_counts(((row[:5], row[5]) for row in stored), before, after))
            periods = find_rows(conn, self.visitor_periods.name, self.period_columns[:3], self.period_columns, moved)
            active_moves = moved_counts(((row, 1) for row in periods), before, after)
        self._add(conn, self.visitor_events, ("experiment", "variant", "visitor_id", "event_type", "hour"), "events",
                  batch)
        self._add(conn, self.agg_event_segments, ("experiment", "variant", "dimension", "value", "event_type", "hour"),
                  "events", event_moves)
        return active_moves

    def _lock_states(self, conn: Connection, keys: list[tuple], visitors: set[str]) -> dict[tuple, tuple[int, int]]:
        """The stored states of these visitors (the keys hold each visitor's (ANY, ANY) row). On
        PostgreSQL each visitor's (ANY, ANY) row is created if missing (mask 0: nothing counted yet)
        and locked first: every write of a visitor's states and contexts happens under that lock, so
        concurrent instances update each visitor in turn. The other `visitors` of the batch (whose
        rows exist: their states are known) are share-locked: their events are counted in the segment
        of a context that no other transaction can change meanwhile. On SQLite the ingest
        transaction holds the database's write lock from its start.
        A visitor with no counted event has no (ANY, ANY) state, and then no state at all: their other
        keys are looked up only when that one is found (a first-time visitor costs one look-up)."""
        table, columns = self.visitor_state.name, self.state_columns
        overall = [k for k in keys if k[0] == ANY and k[1] == ANY]
        if conn.dialect.name == "postgresql":
            upsert_rows(conn, table, columns, columns[:3], [(*k, 0, 0) for k in overall],
                        f"mask = {table}.mask")  # a no-op update: still locks the row
            shared = sorted(visitors - {k[2] for k in overall})
            find_rows(conn, table, columns[:3], columns[:3], [(ANY, ANY, vid) for vid in shared], lock="SHARE")
        found = {(e, v, vid): (first, mask) for e, v, vid, first, mask in find_rows(conn, table, columns[:3], columns,
                                                                                   overall) if mask}
        seen = {vid for _, _, vid in found}
        others = [k for k in keys if k[2] in seen and (k[0] != ANY or k[1] != ANY)]
        found.update(((e, v, vid), (first, mask)) for e, v, vid, first, mask in find_rows(
            conn, table, columns[:3], columns, others) if mask)
        return found

    def rebuild(self, conn: Connection, events: Table, contexts: Table | None = None, registered: Any = None) -> None:
        """Recompute every aggregate from the raw events and their contexts (bulk loads, migrations,
        consistency checks). Without `contexts` (migrations from before segments) the segment tables
        (and the events per segment) are left alone. `registered`: a SELECT of the registered event
        types' keys (none before they existed)."""
        for table in self.event_tables + (self.segment_tables if contexts is not None else ()):
            conn.execute(delete(table))
        counted = counts(events, registered)
        hour = (events.c.ts - events.c.ts % HOUR_MS)
        conn.execute(self.agg_events.insert().from_select(
            ["experiment", "variant", "event_type", "hour", "events"],
            select(events.c.experiment, events.c.variant, events.c.event_type, hour, func.count())
            .where(counted).group_by(events.c.experiment, events.c.variant, events.c.event_type, hour)))
        mask = sum((func.max(_bit(events, name, bit)) for name, bit in EVENT_BITS.items()), literal(0))
        if registered is not None:
            mask = mask + func.max(case((events.c.event_type.in_(list(EVENT_BITS)), 0), else_=CUSTOM_BIT))
        for experiment, variant in _scopes(events):
            conn.execute(self.visitor_state.insert().from_select(
                ["experiment", "variant", "visitor_id", "first_ts", "mask"],
                select(experiment, variant, events.c.visitor_id, func.min(events.c.ts), mask).where(counted)
                .group_by(experiment, variant, events.c.visitor_id)))
        state = self.visitor_state
        cohort = state.c.first_ts - state.c.first_ts % HOUR_MS
        conn.execute(self.agg_cohorts.insert().from_select(
            ["experiment", "variant", "cohort_hour", "mask", "visitors"],
            select(state.c.experiment, state.c.variant, cohort, state.c.mask, func.count())
            .group_by(state.c.experiment, state.c.variant, cohort, state.c.mask)))
        # One grouped insert per (kind, event type or "*"): the parts cannot overlap, and grouping
        # sorts (an external merge sort on SQLite) where a UNION would probe a temporary index per row.
        for experiment, variant in _scopes(events)[:2]:  # no period rows across variants
            for kind, size in PERIODS.items():
                period = (events.c.ts - events.c.ts % size).label("period")
                for event_type in (events.c.event_type, literal(ANY_TYPE)):
                    event_type = event_type.label("event_type")
                    conn.execute(self.visitor_periods.insert().from_select(
                        ["experiment", "variant", "visitor_id", "event_type", "kind", "period"],
                        select(experiment, variant, events.c.visitor_id, event_type,
                               literal(kind).label("kind"), period).where(counted)
                        .group_by(experiment, variant, events.c.visitor_id, event_type, period)))
        periods = self.visitor_periods
        conn.execute(self.agg_active.insert().from_select(
            ["experiment", "variant", "event_type", "kind", "period", "visitors"],
            select(periods.c.experiment, periods.c.variant, periods.c.event_type, periods.c.kind, periods.c.period,
                   func.count())
            .group_by(periods.c.experiment, periods.c.variant, periods.c.event_type, periods.c.kind,
                      periods.c.period)))
        if contexts is not None:
            self._rebuild_segments(conn, events, contexts, counted)
            self.rebuild_event_segments(conn, events, counted)

    def _rebuild_segments(self, conn: Connection, events: Table, contexts: Table, counted) -> None:
        """visitor_context: each visitor's earliest counted exposure with a context, per level (in
        each experiment from the raw events; across experiments the earliest of those, per variant,
        then overall); agg_segments: the visitor states spread over the segments of their context."""
        exposed = (select(events.c.experiment, events.c.variant, events.c.visitor_id, events.c.ts.label("exposed_ts"),
                          events.c.event_id, *(contexts.c[name] for name in DIMENSIONS))
                   .select_from(events.join(contexts, contexts.c.event_id == events.c.event_id))
                   .where(counted, events.c.event_type == EXPOSURE))
        context = self.visitor_context
        self._insert_earliest(conn, exposed.subquery("exposed"), ("experiment", "variant"))
        self._insert_earliest(conn, select(context).where(context.c.experiment != ANY).subquery("each_experiment"),
                              ("variant",))
        self._insert_earliest(conn, select(context).where(context.c.experiment == ANY, context.c.variant != ANY)
                              .subquery("each_variant"), ())
        state = self.visitor_state
        counted_states = select(state.c.experiment, state.c.variant, state.c.visitor_id,
                                (state.c.first_ts - state.c.first_ts % HOUR_MS).label("cohort_hour"),
                                state.c.mask).where(state.c.mask != 0).subquery("states")
        self._spread(conn, counted_states, ("cohort_hour", "mask"), self.agg_segments)

    def _insert_earliest(self, conn: Connection, exposures: Any, kept: Sequence[str]) -> None:
        """Into visitor_context: per (*kept, visitor), the exposure (a row of `exposures`, in the columns
        of visitor_context) earliest by time, then event id; the columns not kept are ANY."""
        rank = func.row_number().over(partition_by=[*(exposures.c[name] for name in kept), exposures.c.visitor_id],
                                      order_by=[exposures.c.exposed_ts, exposures.c.event_id]).label("rank")
        ranked = select(*(exposures.c[name] if name in kept or name not in ("experiment", "variant")
                          else literal(ANY).label(name) for name in self.context_columns), rank).subquery("ranked")
        conn.execute(self.visitor_context.insert().from_select(
            list(self.context_columns), select(*(ranked.c[name] for name in self.context_columns))
            .where(ranked.c.rank == 1)))

    def rebuild_event_segments(self, conn: Connection, events: Table, counted) -> None:
        """visitor_events from the counted raw events (`counted`: the condition of `counts`), and the
        events and active visitors per segment: visitor_events and visitor_periods joined with
        visitor_context (kept as it is), per dimension."""
        for table in self.event_segment_tables:
            conn.execute(delete(table))
        hour = events.c.ts - events.c.ts % HOUR_MS
        keys = (events.c.experiment, events.c.variant, events.c.visitor_id, events.c.event_type, hour)
        conn.execute(self.visitor_events.insert().from_select(
            ["experiment", "variant", "visitor_id", "event_type", "hour", "events"],
            select(*keys, func.count()).where(counted).group_by(*keys)))
        self._spread(conn, self.visitor_events, ("event_type", "hour"), self.agg_event_segments, "events")
        self._spread(conn, self.visitor_periods, ("event_type", "kind", "period"), self.agg_active_segments)

    def _spread(self, conn: Connection, per_visitor: Any, kept: Sequence[str], per_segment: Table,
                summed: str | None = None) -> None:
        """per_segment from the rows of per_visitor (a table or subquery: experiment, variant, visitor_id
        and the `kept` columns) joined with visitor_context: per (experiment, variant, dimension, value,
        *kept), the number of rows, or the sum of their column `summed`. As in `by_segment`, visitors who
        share a context share their rows: the join groups them per context once, and one grouped insert
        spreads each group over every dimension (a join and a sort per dimension took about three times
        as long at 1,000,000 events)."""
        context = self.visitor_context
        keys = [per_visitor.c[name] for name in ("experiment", "variant", *kept)]
        values = [context.c[name] for name in DIMENSIONS]
        total = func.count() if summed is None else func.sum(per_visitor.c[summed])
        grouped = (select(*keys, *values, total.label("total"))
                   .select_from(per_visitor.join(context, and_(*(per_visitor.c[name] == context.c[name]
                                                                 for name in ("experiment", "variant", "visitor_id")))))
                   .group_by(*keys, *values).subquery("per_context"))
        dimensions = union_all(*(select(literal(name, String).label("dimension")) for name in DIMENSIONS)
                               ).subquery("dimensions")
        value = func.coalesce(case({name: grouped.c[name] for name in DIMENSIONS}, value=dimensions.c.dimension), NONE)
        spread = (select(*(grouped.c[name] for name in ("experiment", "variant")), dimensions.c.dimension,
                         value.label("value"), *(grouped.c[name] for name in kept), grouped.c.total)
                  .select_from(grouped.join(dimensions, true())).subquery("spread"))
        group = [spread.c[name] for name in ("experiment", "variant", "dimension", "value", *kept)]
        conn.execute(per_segment.insert().from_select(
            list(per_segment.c.keys()), select(*group, func.sum(spread.c.total)).group_by(*group)))


def counts(events: Table, registered: Any = None):
    """The condition on raw events that the aggregates count: what ingest would count (with
    `registered`, a SELECT of the registered event types' keys, those types too). Rows written some
    other way (by hand, by another version) with an unknown event type, a time before 1970 or past
    year 9999, or "*" (ANY) for an experiment or variant are left out, as ingest refuses them."""
    known = events.c.event_type.in_(list(EVENT_BITS))
    if registered is not None:
        known = or_(known, events.c.event_type.in_(registered))
    return and_(events.c.excluded.is_(None), known, events.c.ts.between(*COUNTABLE_MS), events.c.experiment != ANY,
                events.c.variant != ANY)


def _scopes(events: Table) -> list[tuple]:
    """(experiment, variant) columns of each level the per-visitor tables keep: in the experiment,
    across experiments per variant, across everything."""
    anything = literal(ANY)
    return [(events.c.experiment, events.c.variant), (anything.label("experiment"), events.c.variant),
            (anything.label("experiment"), anything.label("variant"))]


def _bit(events: Table, name: str, bit: int):
    return case((events.c.event_type == name, bit), else_=0)
