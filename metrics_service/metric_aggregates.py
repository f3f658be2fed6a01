"""The metrics catalogue's tables, and the aggregates kept at ingest that feed count and value metrics.

- event_types:    the event types an admin registered (the built-in ones are core.events.EVENT_TYPES)
- metric_defs:    the metrics an admin defined (the built-in conversions are core.events.METRICS)
- visitor_values: per (experiment, variant, visitor, event type other than the exposure): how many
                  counted events the visitor has and the sum of their `value`s
- experiment_plans, sequential_looks: a saved plan per experiment and metric, and the looks its
                  group-sequential readouts took
- agg_metric:     per (experiment, variant, metric), over the visitors exposed (with a page_view)
                  who have the metric's event: how many, and the sums of their counts, of the
                  squares of their counts, of their (capped) value totals and of those squared

Each batch changes them in the ingest transaction, from the rows newly stored and the visitors'
states before and after (metrics_service.aggregates), so a batch costs a fixed handful of
statements whatever the number of events stored; `rebuild` computes the same from the raw events (a
test compares the two). Counts are exact integers; the value sums are floating point, equal to a
rebuild up to rounding. A metric defined (or its cap changed) later is filled from visitor_values
in the same transaction that saves it, under a lock that makes ingest wait (see lock_for_ingest).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
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
    select,
)

from core.db import find_rows, upsert_rows
from core.events import EVENT_BITS, EXPOSURE

EXPOSED = EVENT_BITS[EXPOSURE]
SUMS = ("visitors", "sum_count", "sum_count_sq", "sum_value", "sum_value_sq")


class MetricDef(NamedTuple):
    """What ingest needs of a metric: its key, its event type and its winsorisation cap."""

    key: str
    event_type: str
    cap: float | None


def capped(value: float, cap: float | None) -> float:
    return value if cap is None else min(value, cap)


def contribution(count: int, value: float, exposed: bool, cap: float | None) -> tuple:
    """One visitor's part of a metric's sums (pure): nothing unless exposed with at least one event."""
    if not exposed or count <= 0:
        return (0, 0, 0, 0.0, 0.0)
    v = capped(value, cap)
    return (1, count, count * count, v, v * v)


def value_deltas(rows: Iterable[Any]) -> dict[tuple, tuple[int, float]]:
    """Per (experiment, variant, visitor, event type): the batch's events and the sum of their values,
    for every type but the exposure (pure)."""
    deltas: dict[tuple, list] = {}
    for r in rows:
        if r.event_type == EXPOSURE:
            continue
        delta = deltas.setdefault((r.experiment, r.variant, r.visitor_id, r.event_type), [0, 0.0])
        delta[0] += 1
        delta[1] += r.value or 0.0
    return {k: (n, v) for k, (n, v) in deltas.items()}


def newly_exposed(old: dict[tuple, tuple[int, int]], changed: dict[tuple, tuple[int, int]]) -> set[tuple]:
    """(experiment, variant, visitor) whose state gained the exposure in this batch (pure)."""
    return {k for k, (_, mask) in changed.items()
            if mask & EXPOSED and not old.get(k, (0, 0))[1] & EXPOSED}


def metric_deltas(metrics: Sequence[MetricDef], before: dict[tuple, tuple[int, float]],
                  increments: dict[tuple, tuple[int, float]], exposed_before: dict[tuple, bool],
                  exposed_after: dict[tuple, bool]) -> dict[tuple, list]:
    """Moves in agg_metric (pure): per (experiment, variant, metric) the change of each of SUMS.
    `before`: stored (count, value) per (experiment, variant, visitor, type); `increments`: the batch's."""
    by_type: dict[str, list[MetricDef]] = {}
    for metric in metrics:
        by_type.setdefault(metric.event_type, []).append(metric)
    deltas: dict[tuple, list] = {}
    for key in sorted(set(before) | set(increments)):
        experiment, variant, visitor, event_type = key
        n0, v0 = before.get(key, (0, 0.0))
        dn, dv = increments.get(key, (0, 0.0))
        was, now = exposed_before.get(key[:3], False), exposed_after.get(key[:3], False)
        for metric in by_type.get(event_type, ()):
            old = contribution(n0, v0, was, metric.cap)
            new = contribution(n0 + dn, v0 + dv, now, metric.cap)
            if old == new:
                continue
            sums = deltas.setdefault((experiment, variant, metric.key), [0, 0, 0, 0.0, 0.0])
            for i in range(len(SUMS)):
                sums[i] += new[i] - old[i]
    return deltas


class MetricAggregates:
    def __init__(self, metadata: MetaData):
        self.event_types = Table(
            "event_types", metadata,
            Column("key", String(64), primary_key=True),
            Column("description", Text, nullable=False, default=""),
            Column("created_at", BigInteger, nullable=False))
        self.metric_defs = Table(
            "metric_defs", metadata,
            Column("key", String(64), primary_key=True),
            Column("name", String(200), nullable=False),
            Column("event_type", String(64), nullable=False),
            Column("kind", String(16), nullable=False),  # conversion | count | value
            Column("direction", String(16), nullable=False),  # increase | decrease
            Column("cap", Float, nullable=True),  # winsorisation cap of a visitor's value total
            Column("created_at", BigInteger, nullable=False),
            Column("updated_at", BigInteger, nullable=False))
        self.visitor_values = Table(
            "visitor_values", metadata,
            Column("experiment", String(64), primary_key=True), Column("variant", String(64), primary_key=True),
            Column("visitor_id", String(128), primary_key=True), Column("event_type", String(64), primary_key=True),
            Column("events", BigInteger, nullable=False), Column("value", Float, nullable=False),
            sqlite_with_rowid=False)
        self.agg_metric = Table(
            "agg_metric", metadata,
            Column("experiment", String(64), primary_key=True), Column("variant", String(64), primary_key=True),
            Column("metric", String(64), primary_key=True),
            Column("visitors", BigInteger, nullable=False), Column("sum_count", BigInteger, nullable=False),
            Column("sum_count_sq", BigInteger, nullable=False), Column("sum_value", Float, nullable=False),
            Column("sum_value_sq", Float, nullable=False))
        # A saved plan makes the metric's readouts of the experiment group-sequential; the looks taken
        # are recorded, oldest first, per variant (see sequential.py).
        self.experiment_plans = Table(
            "experiment_plans", metadata,
            Column("experiment", String(64), primary_key=True), Column("metric", String(64), primary_key=True),
            Column("per_variant", BigInteger, nullable=False), Column("mde", Float, nullable=False),
            Column("power", Float, nullable=False), Column("alpha", Float, nullable=False),
            Column("created_at", BigInteger, nullable=False))
        self.sequential_looks = Table(
            "sequential_looks", metadata,
            Column("experiment", String(64), primary_key=True), Column("metric", String(64), primary_key=True),
            Column("variant", String(64), primary_key=True), Column("look", Integer, primary_key=True),
            Column("fraction", Float, nullable=False), Column("z", Float, nullable=False),
            Column("p_value", Float, nullable=False))
        self.value_columns = tuple(self.visitor_values.c.keys())
        self.state_key = ("experiment", "variant", "visitor_id")

    def lock_for_ingest(self, conn: Connection) -> None:
        """On PostgreSQL: ingest transactions share this lock, a metric's save takes it alone (see
        lock_for_definition), so a metric is filled either before a batch or by it, never neither."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"LOCK TABLE {self.metric_defs.name} IN SHARE MODE")

    def lock_for_definition(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"LOCK TABLE {self.metric_defs.name} IN SHARE ROW EXCLUSIVE MODE")

    def definitions(self, conn: Connection) -> list[MetricDef]:
        table = self.metric_defs
        return [MetricDef(r.key, r.event_type, r.cap)
                for r in conn.execute(select(table.c.key, table.c.event_type, table.c.cap))]

    def apply(self, conn: Connection, rows: Sequence[Any], exposed_now: set[tuple]) -> None:
        """Fold a batch's newly stored, counted rows into visitor_values and agg_metric (inside the
        ingest transaction, the visitors' states already written and locked). `exposed_now`: the
        visitors the batch exposed for the first time."""
        increments = value_deltas(rows)
        if not increments and not exposed_now:
            return
        self.lock_for_ingest(conn)
        metrics = self.definitions(conn)
        types = sorted({m.event_type for m in metrics})
        wanted = {k for k in increments if k[3] in types}
        wanted |= {(*visitor, t) for visitor in exposed_now for t in types}
        if wanted:
            before = {tuple(r[:4]): (int(r[4]), float(r[5])) for r in find_rows(
                conn, self.visitor_values.name, self.value_columns[:4], self.value_columns, sorted(wanted))}
            visitors = sorted({k[:3] for k in wanted})
            states = find_rows(conn, "visitor_state", self.state_key, (*self.state_key, "mask"), visitors)
            exposed_after = {tuple(r[:3]): bool(r[3] & EXPOSED) for r in states}
            exposed_before = {k: now and k not in exposed_now for k, now in exposed_after.items()}
            deltas = metric_deltas(metrics, before, {k: increments[k] for k in wanted if k in increments},
                                   exposed_before, exposed_after)
            columns = ("experiment", "variant", "metric", *SUMS)
            name = self.agg_metric.name
            upsert_rows(conn, name, columns, columns[:3], [(*k, *d) for k, d in sorted(deltas.items())],
                        ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in SUMS))
        name = self.visitor_values.name
        upsert_rows(conn, name, self.value_columns, self.value_columns[:4],
                    [(*k, n, v) for k, (n, v) in sorted(increments.items())],
                    f"events = {name}.events + excluded.events, value = {name}.value + excluded.value")

    def rebuild_values(self, conn: Connection, events: Table, counted) -> None:
        """visitor_values from the raw events; `counted`: the condition on events that ingest counts."""
        conn.execute(delete(self.visitor_values))
        conn.execute(self.visitor_values.insert().from_select(
            list(self.value_columns),
            select(events.c.experiment, events.c.variant, events.c.visitor_id, events.c.event_type, func.count(),
                   func.coalesce(func.sum(func.coalesce(events.c.value, 0.0)), 0.0))
            .where(and_(counted, events.c.event_type != EXPOSURE))
            .group_by(events.c.experiment, events.c.variant, events.c.visitor_id, events.c.event_type)))

    def fill_metric(self, conn: Connection, key: str) -> None:
        """agg_metric's rows of one metric, computed afresh from visitor_values and visitor_state."""
        conn.execute(delete(self.agg_metric).where(self.agg_metric.c.metric == key))
        metric = conn.execute(select(self.metric_defs).where(self.metric_defs.c.key == key)).mappings().first()
        if metric is None:
            return
        values, state = self.visitor_values, Table("visitor_state", self.visitor_values.metadata)
        value = values.c.value if metric["cap"] is None else case(
            (values.c.value > metric["cap"], literal(metric["cap"], Float)), else_=values.c.value)
        joined = values.join(state, and_(state.c.experiment == values.c.experiment,
                                         state.c.variant == values.c.variant,
                                         state.c.visitor_id == values.c.visitor_id))
        conn.execute(self.agg_metric.insert().from_select(
            ["experiment", "variant", "metric", *SUMS],
            select(values.c.experiment, values.c.variant, literal(key).label("metric"), func.count(),
                   func.sum(values.c.events), func.sum(values.c.events * values.c.events),
                   func.sum(value), func.sum(value * value))
            .select_from(joined)
            .where(values.c.event_type == metric["event_type"], values.c.events > 0,
                   state.c.mask.op("&")(EXPOSED) == EXPOSED)
            .group_by(values.c.experiment, values.c.variant)))

    def rebuild(self, conn: Connection, events: Table, counted) -> None:
        self.rebuild_values(conn, events, counted)
        for (key,) in conn.execute(select(self.metric_defs.c.key)).all():
            self.fill_metric(conn, key)
