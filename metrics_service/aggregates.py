"""Aggregates kept at ingest so every stats query reads small tables, not the raw event log.

- agg_events:      events per (experiment, variant, event_type, hour)
- visitor_state:   per (experiment, variant, visitor): time of the first counted event and the set
                   of event types seen, as a bit mask (page_view 1, cta_click 2, form_submit 4)
- agg_cohorts:     visitors per (experiment, variant, cohort hour = hour of first event, mask)
- visitor_periods: which (visitor, event type or "*", hour or day) pairs have been seen
- agg_active:      distinct visitors per (experiment, variant, event type or "*", hour or day)

Every change is applied in the ingest transaction, from the rows that were newly stored, so the
aggregates stay exactly what `rebuild` computes from the raw events (a test compares the two).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    literal,
    select,
)

from core.db import find_rows, insert_new, insert_rows, upsert_rows
from core.events import EVENT_BITS, EVENT_TYPES

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIODS = {"h": HOUR_MS, "d": DAY_MS}
ANY_TYPE = "*"


def define(metadata: MetaData) -> dict[str, Table]:
    def keyed(*columns):
        return [Column("experiment", String(64), primary_key=True),
                Column("variant", String(64), primary_key=True), *columns]

    return {
        "agg_events": Table("agg_events", metadata, *keyed(
            Column("event_type", String(32), primary_key=True), Column("hour", BigInteger, primary_key=True),
            Column("events", BigInteger, nullable=False))),
        "visitor_state": Table("visitor_state", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("first_ts", BigInteger, nullable=False),
            Column("mask", Integer, nullable=False)), sqlite_with_rowid=False),
        "agg_cohorts": Table("agg_cohorts", metadata, *keyed(
            Column("cohort_hour", BigInteger, primary_key=True), Column("mask", Integer, primary_key=True),
            Column("visitors", BigInteger, nullable=False))),
        "visitor_periods": Table("visitor_periods", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("event_type", String(32), primary_key=True),
            Column("kind", String(1), primary_key=True), Column("period", BigInteger, primary_key=True)),
            sqlite_with_rowid=False),
        "agg_active": Table("agg_active", metadata, *keyed(
            Column("event_type", String(32), primary_key=True), Column("kind", String(1), primary_key=True),
            Column("period", BigInteger, primary_key=True), Column("visitors", BigInteger, nullable=False))),
    }


def floor_to(ms: int, size: int) -> int:
    return ms - ms % size


def event_deltas(rows: Iterable[Any]) -> Counter:
    return Counter((r.experiment, r.variant, r.event_type, floor_to(r.ts, HOUR_MS)) for r in rows)


def batch_states(rows: Iterable[Any]) -> dict[tuple, tuple[int, int]]:
    """Per (experiment, variant, visitor): the batch's earliest time and its event-type mask."""
    states: dict[tuple, list[int]] = {}
    for r in rows:
        state = states.setdefault((r.experiment, r.variant, r.visitor_id), [r.ts, 0])
        state[0] = min(state[0], r.ts)
        state[1] |= EVENT_BITS[r.event_type]
    return {k: (v[0], v[1]) for k, v in states.items()}


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
            deltas[(experiment, variant, floor_to(before[0], HOUR_MS), before[1])] -= 1
        deltas[(experiment, variant, floor_to(after[0], HOUR_MS), after[1])] += 1
        changed[key] = after
    return deltas, changed


class Counted(NamedTuple):
    """A newly stored event that counts (not excluded): what the aggregates are made of (the
    fields of core.events.EventRow that matter, in the same order)."""

    experiment: str
    variant: str
    event_type: str
    visitor_id: str
    ts: int


class Recent:
    """A bounded memory in two generations: entries written recently stay, older ones are dropped
    a generation at a time (an approximate LRU without a per-entry linked list)."""

    def __init__(self, limit: int):
        self.limit = max(2, limit)
        self._young: dict = {}
        self._old: dict = {}

    def get(self, key):
        value = self._young.get(key)
        return self._old.get(key) if value is None else value

    def __len__(self) -> int:
        return len(self._young) + sum(1 for key in self._old if key not in self._young)

    def put(self, key, value) -> None:
        self._young[key] = value
        if len(self._young) >= self.limit // 2:
            self._old, self._young = self._young, {}


ANY_BIT = 1 << len(EVENT_TYPES)  # beside EVENT_BITS: "some event" in a period (the "*" rows of visitor_periods)


class VisitorMemo:
    """What is known to be stored for one visitor: the state row, and the period rows of the
    latest hour and day seen (as bit masks of event types, ANY_BIT for "*")."""

    __slots__ = ("first_ts", "mask", "hour", "hour_bits", "day", "day_bits")

    def __init__(self, first_ts: int, mask: int):
        self.first_ts, self.mask = first_ts, mask
        self.hour = self.day = -1
        self.hour_bits = self.day_bits = 0

    def covers_state(self, first_ts: int, mask: int) -> bool:
        """True when a batch can change nothing in the state (no earlier event, no new type)."""
        return self.first_ts <= first_ts and mask & ~self.mask == 0

    def has_period(self, kind: str, period: int, bit: int) -> bool:
        if kind == "h":
            return self.hour == period and bool(self.hour_bits & bit)
        return self.day == period and bool(self.day_bits & bit)

    def saw_period(self, kind: str, period: int, bit: int) -> None:
        if kind == "h":
            if period > self.hour:
                self.hour, self.hour_bits = period, 0
            if period == self.hour:
                self.hour_bits |= bit
        else:
            if period > self.day:
                self.day, self.day_bits = period, 0
            if period == self.day:
                self.day_bits |= bit


class Known:
    """Rows one store has seen committed, per visitor, so later batches skip what is already there.

    Stored rows only ever grow (a period seen, an earlier first event, more event types), so a
    remembered period row is still there and a remembered state can only have moved further.
    Kept per store (per database), for the most recent `limit` visitors (about 300 bytes each)."""

    def __init__(self, limit: int = 100_000):
        self.visitors = Recent(limit)

    def unknown_periods(self, rows: Iterable[Counted]) -> set[tuple]:
        """The visitor_periods rows these events need that are not known to be stored."""
        get = self.visitors.get
        keys = set()
        for experiment, variant, event_type, visitor_id, ts in rows:
            memo = get((experiment, variant, visitor_id))
            bit = EVENT_BITS[event_type]
            for kind, size in PERIODS.items():
                period = ts - ts % size
                for name, flag in ((event_type, bit), (ANY_TYPE, ANY_BIT)):
                    if memo is None or not memo.has_period(kind, period, flag):
                        keys.add((experiment, variant, visitor_id, name, kind, period))
        return keys

    def unknown_states(self, states: dict[tuple, tuple[int, int]]) -> dict[tuple, tuple[int, int]]:
        get = self.visitors.get
        return {k: v for k, v in states.items() if (memo := get(k)) is None or not memo.covers_state(*v)}

    def remember(self, states: dict[tuple, tuple[int, int]], periods: Iterable[tuple]) -> None:
        """After commit: the visitors' stored states, and period rows now known to be stored."""
        for key, (first_ts, mask) in states.items():
            memo = self.visitors.get(key)
            if memo is None:
                self.visitors.put(key, VisitorMemo(first_ts, mask))
            else:
                memo.first_ts, memo.mask = first_ts, mask
                self.visitors.put(key, memo)
        for experiment, variant, visitor_id, event_type, kind, period in periods:
            memo = self.visitors.get((experiment, variant, visitor_id))
            if memo is not None:
                memo.saw_period(kind, period, _bit_of(event_type))


def _bit_of(event_type: str) -> int:
    return ANY_BIT if event_type == ANY_TYPE else EVENT_BITS[event_type]


PERIOD_COLUMNS = ("experiment", "variant", "visitor_id", "event_type", "kind", "period")
STATE_COLUMNS = ("experiment", "variant", "visitor_id", "first_ts", "mask")


class Aggregates:
    """The aggregate tables, and how a batch of new events changes them. The statements are plain
    SQL in each driver's parameter style, so a batch costs a fixed handful of round trips and no
    statement building."""

    def __init__(self, metadata: MetaData):
        self.tables = define(metadata)

    def __getattr__(self, name: str) -> Table:
        try:
            return self.__dict__["tables"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    @staticmethod
    def _add(conn: Connection, table: str, keys: Sequence[str], value: str, deltas: Counter) -> None:
        """Upsert value += delta for each key, in key order (a stable lock order on PostgreSQL)."""
        rows = [(*k, d) for k, d in sorted(deltas.items()) if d]
        upsert_rows(conn, table, (*keys, value), keys, rows, f"{value} = {table}.{value} + excluded.{value}")

    def apply(self, conn: Connection, rows: Sequence[Counted], known: Known) -> Callable[[], None]:
        """Fold newly stored, counted events into every aggregate (inside the ingest transaction).
        Returns what to call once the transaction has committed (it remembers the rows written)."""
        if not rows:
            return lambda: None
        self._add(conn, "agg_events", ("experiment", "variant", "event_type", "hour"), "events", event_deltas(rows))

        # Visitor states first: on PostgreSQL this locks each visitor's row, so the period rows
        # below are written by one instance at a time per visitor.
        states = batch_states(rows)
        batch = known.unknown_states(states)
        old = self._lock_states(conn, sorted(batch))
        deltas, changed = cohort_deltas(old, batch)
        upsert_rows(conn, "visitor_state", STATE_COLUMNS, STATE_COLUMNS[:3],
                    [(*k, first, mask) for k, (first, mask) in sorted(changed.items())],
                    "first_ts = excluded.first_ts, mask = excluded.mask")
        self._add(conn, "agg_cohorts", ("experiment", "variant", "cohort_hour", "mask"), "visitors", deltas)

        # A visitor with no counted event before this batch has no period rows yet: theirs are
        # all new and need no look-up. Everyone else's go through insert_new.
        first_timers = {k for k in batch if k not in old}
        periods = sorted(known.unknown_periods(rows))
        if conn.dialect.name == "sqlite":
            fresh = [p for p in periods if p[:3] in first_timers]
            insert_rows(conn, "visitor_periods", PERIOD_COLUMNS, fresh)
            rest = [p for p in periods if p[:3] not in first_timers]
        else:  # one INSERT .. RETURNING either way
            fresh, rest = [], periods
        fresh += insert_new(conn, "visitor_periods", PERIOD_COLUMNS, rest, key=PERIOD_COLUMNS)
        self._add(conn, "agg_active", ("experiment", "variant", "event_type", "kind", "period"), "visitors",
                  Counter((e, v, t, k, p) for e, v, _, t, k, p in fresh))

        def remember() -> None:
            known.remember({**old, **changed}, periods)

        return remember

    @staticmethod
    def _lock_states(conn: Connection, keys: list[tuple]) -> dict[tuple, tuple[int, int]]:
        """The stored states of these visitors. On PostgreSQL the rows are created if missing (mask 0:
        nothing counted yet) and locked, so concurrent instances update each visitor in turn; on
        SQLite the ingest transaction holds the database's write lock from its start."""
        postgres = conn.dialect.name == "postgresql"
        if postgres and keys:
            upsert_rows(conn, "visitor_state", STATE_COLUMNS, STATE_COLUMNS[:3], [(*k, 0, 0) for k in keys],
                        "mask = visitor_state.mask")  # a no-op update: still locks the row
        found = find_rows(conn, "visitor_state", STATE_COLUMNS[:3], STATE_COLUMNS, keys, for_update=postgres)
        return {(e, v, vid): (first, mask) for e, v, vid, first, mask in found if mask}

    def rebuild(self, conn: Connection, events: Table) -> None:
        """Recompute every aggregate from the raw events (bulk loads, migrations, consistency checks)."""
        for table in self.tables.values():
            conn.execute(delete(table))
        counted = events.c.excluded.is_(None)
        hour = (events.c.ts - events.c.ts % HOUR_MS)
        conn.execute(self.agg_events.insert().from_select(
            ["experiment", "variant", "event_type", "hour", "events"],
            select(events.c.experiment, events.c.variant, events.c.event_type, hour, func.count())
            .where(counted).group_by(events.c.experiment, events.c.variant, events.c.event_type, hour)))
        mask = sum((func.max(_bit(events, name, bit)) for name, bit in EVENT_BITS.items()), literal(0))
        conn.execute(self.visitor_state.insert().from_select(
            ["experiment", "variant", "visitor_id", "first_ts", "mask"],
            select(events.c.experiment, events.c.variant, events.c.visitor_id, func.min(events.c.ts), mask)
            .where(counted).group_by(events.c.experiment, events.c.variant, events.c.visitor_id)))
        state = self.visitor_state
        cohort = state.c.first_ts - state.c.first_ts % HOUR_MS
        conn.execute(self.agg_cohorts.insert().from_select(
            ["experiment", "variant", "cohort_hour", "mask", "visitors"],
            select(state.c.experiment, state.c.variant, cohort, state.c.mask, func.count())
            .group_by(state.c.experiment, state.c.variant, cohort, state.c.mask)))
        # One grouped insert per (kind, event type or "*"): the parts cannot overlap, and grouping
        # sorts (an external merge sort on SQLite) where a UNION would probe a temporary index per row.
        for kind, size in PERIODS.items():
            period = (events.c.ts - events.c.ts % size).label("period")
            for event_type in (events.c.event_type, literal(ANY_TYPE)):
                event_type = event_type.label("event_type")
                conn.execute(self.visitor_periods.insert().from_select(
                    ["experiment", "variant", "visitor_id", "event_type", "kind", "period"],
                    select(events.c.experiment, events.c.variant, events.c.visitor_id, event_type,
                           literal(kind).label("kind"), period).where(counted)
                    .group_by(events.c.experiment, events.c.variant, events.c.visitor_id, event_type, period)))
        periods = self.visitor_periods
        conn.execute(self.agg_active.insert().from_select(
            ["experiment", "variant", "event_type", "kind", "period", "visitors"],
            select(periods.c.experiment, periods.c.variant, periods.c.event_type, periods.c.kind, periods.c.period,
                   func.count())
            .group_by(periods.c.experiment, periods.c.variant, periods.c.event_type, periods.c.kind,
                      periods.c.period)))


def _bit(events: Table, name: str, bit: int):
    from sqlalchemy import case

    return case((events.c.event_type == name, bit), else_=0)


def snapshot(conn: Connection, aggregates: Aggregates) -> dict[str, set[tuple]]:
    """Every aggregate row except zero counters, for comparing maintained and rebuilt aggregates."""
    result = {}
    for name, table in aggregates.tables.items():
        rows = conn.execute(select(table)).all()
        value = {"agg_events": "events", "agg_cohorts": "visitors", "agg_active": "visitors"}.get(name)
        if value:
            index = list(table.c.keys()).index(value)
            rows = [r for r in rows if r[index] != 0]
        result[name] = {tuple(r) for r in rows}
    return result



