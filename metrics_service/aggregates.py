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
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    tuple_,
    union,
    update,
)

from core.db import dialect_insert, insert_ignore

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PERIODS = {"h": HOUR_MS, "d": DAY_MS}
ANY_TYPE = "*"
EVENT_BITS = {"page_view": 1, "cta_click": 2, "form_submit": 4}


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
            Column("mask", Integer, nullable=False))),
        "agg_cohorts": Table("agg_cohorts", metadata, *keyed(
            Column("cohort_hour", BigInteger, primary_key=True), Column("mask", Integer, primary_key=True),
            Column("visitors", BigInteger, nullable=False))),
        "visitor_periods": Table("visitor_periods", metadata, *keyed(
            Column("visitor_id", String(128), primary_key=True), Column("event_type", String(32), primary_key=True),
            Column("kind", String(1), primary_key=True), Column("period", BigInteger, primary_key=True))),
        "agg_active": Table("agg_active", metadata, *keyed(
            Column("event_type", String(32), primary_key=True), Column("kind", String(1), primary_key=True),
            Column("period", BigInteger, primary_key=True), Column("visitors", BigInteger, nullable=False))),
    }


def floor_to(ms: int, size: int) -> int:
    return ms - ms % size


def event_deltas(rows: Iterable[Any]) -> Counter:
    return Counter((r.experiment, r.variant, r.event_type, floor_to(r.ts, HOUR_MS)) for r in rows)


def period_keys(rows: Iterable[Any]) -> set[tuple]:
    keys = set()
    for r in rows:
        for kind, size in PERIODS.items():
            for event_type in (r.event_type, ANY_TYPE):
                keys.add((r.experiment, r.variant, r.visitor_id, event_type, kind, floor_to(r.ts, size)))
    return keys


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


class Aggregates:
    def __init__(self, metadata: MetaData):
        self.tables = define(metadata)

    def __getattr__(self, name: str) -> Table:
        try:
            return self.__dict__["tables"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def _add(self, conn: Connection, table: Table, keys: Sequence[str], value: str, deltas: Counter) -> None:
        """Upsert value += delta for each key, in key order (a stable lock order on PostgreSQL)."""
        rows = [dict(zip(keys, k, strict=True), **{value: d}) for k, d in sorted(deltas.items()) if d]
        if not rows:
            return
        statement = dialect_insert(conn, table)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={value: table.c[value] + statement.excluded[value]}
        )
        conn.execute(statement, rows)

    def apply(self, conn: Connection, rows: Sequence[Any]) -> None:
        """Fold newly stored, counted events into every aggregate (inside the ingest transaction)."""
        if not rows:
            return
        self._add(conn, self.agg_events, ("experiment", "variant", "event_type", "hour"), "events", event_deltas(rows))

        periods = self.visitor_periods
        fresh = conn.execute(
            insert_ignore(conn, periods).returning(periods.c.experiment, periods.c.variant, periods.c.event_type,
                                                  periods.c.kind, periods.c.period),
            [dict(zip(("experiment", "variant", "visitor_id", "event_type", "kind", "period"), k, strict=True))
             for k in sorted(period_keys(rows))],
        ).all()
        self._add(conn, self.agg_active, ("experiment", "variant", "event_type", "kind", "period"), "visitors",
                  Counter(tuple(r) for r in fresh))

        batch = batch_states(rows)
        state = self.visitor_state
        keys = sorted(batch)
        # Create missing rows first (mask 0 = nothing counted yet), then lock and read them all.
        conn.execute(insert_ignore(conn, state), [
            {"experiment": e, "variant": v, "visitor_id": vid, "first_ts": batch[(e, v, vid)][0], "mask": 0}
            for e, v, vid in keys])
        query = select(state.c.experiment, state.c.variant, state.c.visitor_id, state.c.first_ts, state.c.mask).where(
            tuple_(state.c.experiment, state.c.variant, state.c.visitor_id).in_(keys))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        old = {(r.experiment, r.variant, r.visitor_id): (r.first_ts, r.mask) for r in conn.execute(query) if r.mask}
        deltas, changed = cohort_deltas(old, batch)
        if changed:
            conn.execute(
                update(state)
                .where(state.c.experiment == bindparam("k_experiment"), state.c.variant == bindparam("k_variant"),
                       state.c.visitor_id == bindparam("k_visitor"))
                .values(first_ts=bindparam("new_first"), mask=bindparam("new_mask")),
                [{"k_experiment": e, "k_variant": v, "k_visitor": vid, "new_first": f, "new_mask": m}
                 for (e, v, vid), (f, m) in sorted(changed.items())],
            )
        self._add(conn, self.agg_cohorts, ("experiment", "variant", "cohort_hour", "mask"), "visitors", deltas)

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
        selects = []
        for kind, size in PERIODS.items():
            period = events.c.ts - events.c.ts % size
            for event_type in (events.c.event_type, literal(ANY_TYPE)):
                selects.append(select(events.c.experiment, events.c.variant, events.c.visitor_id,
                                      event_type.label("event_type"), literal(kind).label("kind"),
                                      period.label("period")).where(counted))
        conn.execute(self.visitor_periods.insert().from_select(
            ["experiment", "variant", "visitor_id", "event_type", "kind", "period"], union(*selects)))
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



