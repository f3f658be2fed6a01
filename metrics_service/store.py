"""metrics_service storage: the raw event log and the queries over it (SQLAlchemy Core)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    select,
)

from core.db import insert_ignore
from core.migrate import upgrade

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
    Index("ix_events_experiment_type_variant", "experiment", "event_type", "variant"),
    Index("ix_events_ts", "ts"),
)


@dataclass(frozen=True)
class EventFilter:
    experiment: str | None = None
    variant: str | None = None
    event_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def clauses(self, include_event_type: bool = True) -> list:
        conditions = [events.c.excluded.is_(None)]
        if self.experiment:
            conditions.append(events.c.experiment == self.experiment)
        if self.variant:
            conditions.append(events.c.variant == self.variant)
        if include_event_type and self.event_type:
            conditions.append(events.c.event_type == self.event_type)
        if self.since_ms is not None:
            conditions.append(events.c.ts >= self.since_ms)
        if self.until_ms is not None:
            conditions.append(events.c.ts < self.until_ms)
        return conditions


class MetricsStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def init_schema(self) -> None:
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE)

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store rows in one transaction; rows whose event_id is already stored are skipped.

        Returns how many rows were new.
        """
        if not rows:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(insert_ignore(conn, events).returning(events.c.id), list(rows))
            return len(result.all())

    def count_events(self, flt: EventFilter = EventFilter()) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(events).where(and_(True, *flt.clauses()))).scalar_one()

    def matrix(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events and unique visitors per (variant, event_type)."""
        query = (
            select(
                events.c.variant,
                events.c.event_type,
                func.count().label("events"),
                func.count(events.c.visitor_id.distinct()).label("visitors"),
            )
            .where(and_(True, *flt.clauses()))
            .group_by(events.c.variant, events.c.event_type)
            .order_by(events.c.variant, events.c.event_type)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def unique_visitors(self, flt: EventFilter, group_by: str | None = None) -> dict[str | None, int]:
        """Distinct visitors overall (key None) or per variant / event_type."""
        column = events.c[group_by] if group_by else None
        cols = [column] if column is not None else []
        query = select(*cols, func.count(events.c.visitor_id.distinct())).where(and_(True, *flt.clauses()))
        if column is not None:
            query = query.group_by(column)
        with self.engine.connect() as conn:
            if column is None:
                return {None: conn.execute(query).scalar_one()}
            return {row[0]: row[1] for row in conn.execute(query)}

    def exposure_conversions(self, flt: EventFilter, metrics: Sequence[str]) -> list[dict[str, Any]]:
        """Per variant: visitors with a page_view, and how many of them also have each metric event."""
        flags = {
            name: func.max(case((events.c.event_type == name, 1), else_=0)).label(name)
            for name in ("page_view", *metrics)
        }
        per_visitor = (
            select(events.c.variant, events.c.visitor_id, *flags.values())
            .where(and_(True, *flt.clauses(include_event_type=False)))
            .group_by(events.c.variant, events.c.visitor_id)
            .subquery()
        )
        exposed = per_visitor.c.page_view
        query = (
            select(
                per_visitor.c.variant,
                func.sum(exposed).label("visitors"),
                *[func.sum(exposed * per_visitor.c[name]).label(name) for name in metrics],
            )
            .group_by(per_visitor.c.variant)
            .order_by(per_visitor.c.variant)
        )
        with self.engine.connect() as conn:
            return [
                {key: (int(value or 0) if key != "variant" else value) for key, value in row.items()}
                for row in conn.execute(query).mappings()
            ]

    def timeseries(self, flt: EventFilter, interval_ms: int) -> list[dict[str, Any]]:
        """Events and unique visitors per (time bucket, variant); bucket = start of the interval in ms."""
        bucket = (events.c.ts - events.c.ts % interval_ms).label("bucket")
        query = (
            select(
                bucket,
                events.c.variant,
                func.count().label("events"),
                func.count(events.c.visitor_id.distinct()).label("visitors"),
            )
            .where(and_(True, *flt.clauses()))
            .group_by(bucket, events.c.variant)
            .order_by(bucket, events.c.variant)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def funnel(self, flt: EventFilter, steps: Sequence[str]) -> list[dict[str, Any]]:
        """Per variant: visitors who reached each step having reached every step before it."""
        flags = [func.max(case((events.c.event_type == step, 1), else_=0)).label(step) for step in steps]
        per_visitor = (
            select(events.c.variant, *flags)
            .where(and_(True, *flt.clauses(include_event_type=False)))
            .group_by(events.c.variant, events.c.visitor_id)
            .subquery()
        )
        reached = []
        product = None
        for step in steps:
            product = per_visitor.c[step] if product is None else product * per_visitor.c[step]
            reached.append(func.sum(product).label(step))
        query = select(per_visitor.c.variant, *reached).group_by(per_visitor.c.variant).order_by(per_visitor.c.variant)
        with self.engine.connect() as conn:
            return [
                {key: (value if key == "variant" else int(value or 0)) for key, value in row.items()}
                for row in conn.execute(query).mappings()
            ]

    def first_times(self, flt: EventFilter, metric: str) -> list[tuple[str, int, int | None]]:
        """Per exposed visitor: (variant, first page_view time, first metric time or None)."""
        first_view = func.min(case((events.c.event_type == "page_view", events.c.ts), else_=None))
        first_metric = func.min(case((events.c.event_type == metric, events.c.ts), else_=None))
        query = (
            select(events.c.variant, first_view.label("viewed"), first_metric.label("converted"))
            .where(and_(True, *flt.clauses(include_event_type=False)))
            .group_by(events.c.variant, events.c.visitor_id)
            .having(first_view.is_not(None))
        )
        with self.engine.connect() as conn:
            return [(row.variant, row.viewed, row.converted) for row in conn.execute(query)]
