"""The metrics catalogue's storage: registered event types, metric definitions, and the per-metric
sums that feed count and value readouts (kept at ingest, see metric_aggregates.py)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from core.db import insert_new, now_millis, run_write
from core.events import EVENT_BITS, EXPOSURE
from metrics_service.aggregates import ANY
from metrics_service.sequential import Look
from metrics_service.store import aggregates, has, metric_tables

EVENT_TYPE_FIELDS = ("key", "description")
METRIC_FIELDS = ("key", "name", "event_type", "kind", "direction", "cap")


class CatalogueStore:
    def __init__(self, engine: Engine, settle: Callable[[], None] = lambda: None):
        """`settle`: folds the events ingest queued (MetricsStore.settle); readouts of the aggregates
        call it first."""
        self.engine = engine
        self.settle = settle

    # event types ---------------------------------------------------------------
    def event_types(self) -> list[dict[str, Any]]:
        table = metric_tables.event_types
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(table.c.key, table.c.description)
                                                  .order_by(table.c.key)).mappings()]

    def registered(self, keys: Sequence[str]) -> set[str]:
        """Which of these keys are registered event types."""
        table = metric_tables.event_types
        with self.engine.connect() as conn:
            return set(conn.execute(select(table.c.key).where(table.c.key.in_(sorted(set(keys))))).scalars())

    def add_event_type(self, key: str, description: str) -> bool:
        """Register a type; False when the key is taken."""
        def work(conn) -> bool:
            table = metric_tables.event_types
            if conn.execute(select(table.c.key).where(table.c.key == key)).first():
                return False
            conn.execute(insert(table).values(key=key, description=description, created_at=now_millis()))
            return True

        return run_write(self.engine, work)

    # metrics -------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        table = metric_tables.metric_defs
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(*(table.c[f] for f in METRIC_FIELDS))
                                                  .order_by(table.c.key)).mappings()]

    def metric(self, key: str) -> dict[str, Any] | None:
        table = metric_tables.metric_defs
        with self.engine.connect() as conn:
            row = conn.execute(select(*(table.c[f] for f in METRIC_FIELDS))
                               .where(table.c.key == key)).mappings().first()
        return dict(row) if row else None

    def save_metric(self, values: dict[str, Any], create: bool) -> bool:
        """Create (False when the key is taken) or update a metric, and fill its sums from what is
        stored, in one transaction that ingest waits for (see MetricAggregates.lock_for_definition)."""
        def work(conn) -> bool:
            metric_tables.lock_for_definition(conn)
            table = metric_tables.metric_defs
            exists = conn.execute(select(table.c.key).where(table.c.key == values["key"])).first() is not None
            now = now_millis()
            if create:
                if exists:
                    return False
                conn.execute(insert(table).values(**values, created_at=now, updated_at=now))
            else:
                if not exists:
                    return False
                conn.execute(update(table).where(table.c.key == values["key"]).values(**values, updated_at=now))
            metric_tables.fill_metric(conn, values["key"])
            return True

        return run_write(self.engine, work)

    # readouts ------------------------------------------------------------------
    def metric_sums(self, experiment: str, metric: str) -> dict[str, dict[str, float]]:
        """Per variant: exposed visitors, and the metric's sums over those with its event."""
        sums, cohorts = metric_tables.agg_metric, aggregates.agg_cohorts
        exposed = EVENT_BITS[EXPOSURE]
        self.settle()
        with self.engine.connect() as conn:
            visitors = {r.variant: int(r.visitors) for r in conn.execute(
                select(cohorts.c.variant, func.sum(cohorts.c.visitors).label("visitors"))
                .where(cohorts.c.experiment == experiment, has(cohorts.c.mask, exposed))
                .group_by(cohorts.c.variant))}
            found = {r.variant: r for r in conn.execute(
                select(sums).where(sums.c.experiment == experiment, sums.c.metric == metric))}
        result = {}
        for variant in sorted(set(visitors) | set(found)):
            row = found.get(variant)
            result[variant] = {"exposed": visitors.get(variant, 0),
                               "visitors": int(row.visitors) if row else 0,
                               "sum_count": int(row.sum_count) if row else 0,
                               "sum_count_sq": int(row.sum_count_sq) if row else 0,
                               "sum_value": float(row.sum_value) if row else 0.0,
                               "sum_value_sq": float(row.sum_value_sq) if row else 0.0}
        return result

    def daily_exposed(self, experiment: str | None, since_ms: int) -> dict[int, int]:
        """Exposed visitors per day since `since_ms` (new ones: by the day of their first event),
        for the experiment, or across the site without one."""
        cohorts = aggregates.agg_cohorts
        exposed = EVENT_BITS[EXPOSURE]
        day = (cohorts.c.cohort_hour - cohorts.c.cohort_hour % 86_400_000).label("day")
        scope = ([cohorts.c.experiment == experiment] if experiment
                 else [cohorts.c.experiment == ANY, cohorts.c.variant == ANY])
        self.settle()
        with self.engine.connect() as conn:
            return {int(r.day): int(r.visitors) for r in conn.execute(
                select(day, func.sum(cohorts.c.visitors).label("visitors"))
                .where(*scope, has(cohorts.c.mask, exposed), cohorts.c.cohort_hour >= since_ms)
                .group_by(day))}

    # plans and the looks of group-sequential readouts ------------------------------------------
    def plan(self, experiment: str, metric: str) -> dict[str, Any] | None:
        table = metric_tables.experiment_plans
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.experiment == experiment,
                                                   table.c.metric == metric)).mappings().first()
        return dict(row) if row else None

    def save_plan(self, experiment: str, metric: str, per_variant: int, mde: float, power: float,
                  alpha: float) -> bool:
        """Save (or, before its first look, replace) the plan; False once a look was taken under the
        saved plan: the planned size is fixed from then on (its looks have spent alpha)."""
        plans, looks = metric_tables.experiment_plans, metric_tables.sequential_looks

        def work(conn) -> bool:
            if conn.execute(select(looks.c.look).where(looks.c.experiment == experiment,
                                                       looks.c.metric == metric).limit(1)).first():
                return False
            conn.execute(delete(plans).where(plans.c.experiment == experiment, plans.c.metric == metric))
            conn.execute(insert(plans).values(experiment=experiment, metric=metric, per_variant=per_variant, mde=mde,
                                              power=power, alpha=alpha, created_at=now_millis()))
            return True

        return run_write(self.engine, work)

    def looks(self, experiment: str, metric: str) -> dict[str, list[Look]]:
        table = metric_tables.sequential_looks
        found: dict[str, list[Look]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(select(table).where(table.c.experiment == experiment, table.c.metric == metric)
                                    .order_by(table.c.variant, table.c.look)):
                found.setdefault(row.variant, []).append(Look(row.fraction, row.z, row.p_value))
        return found

    def record_looks(self, experiment: str, metric: str, taken: dict[str, tuple[int, Look]]) -> None:
        """Append the looks a reading took ({variant: (its position, look)}); a position another
        reading filled first keeps that reading's look."""
        rows = [(experiment, metric, variant, position, look.fraction, look.z, look.p_value)
                for variant, (position, look) in sorted(taken.items())]
        if rows:
            table = metric_tables.sequential_looks
            run_write(self.engine, lambda conn: insert_new(conn, table.name, tuple(table.c.keys()), rows,
                                                           key=tuple(table.c.keys())[:4]))
