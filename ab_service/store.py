"""ab_service storage: experiments, sticky assignments and feature flags (SQLAlchemy Core)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

from core.db import insert_ignore, now_millis

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("variants", JSON, nullable=False),  # [{"name": "A", "weight": 0.5}, ...]; the first is control
    Column("coverage", Float, nullable=False, default=1.0),
    Column("seed", String(128), nullable=True),
    Column("status", String(16), nullable=False, default="running"),
    Column("updated_at", BigInteger, nullable=False),
)

assignments = Table(
    "assignments",
    metadata,
    Column("experiment", String(64), primary_key=True),
    Column("visitor_id", String(128), primary_key=True),
    Column("variant", String(64), nullable=False),
    Column("assigned_at", BigInteger, nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("value", Text, nullable=False),  # JSON-encoded
    Column("updated_at", BigInteger, nullable=False),
)

DEFAULT_EXPERIMENT = {
    "key": "landing",
    "description": "Landing page headline and layout",
    "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}],
    "coverage": 1.0,
    "seed": None,
    "status": "running",
}

DEFAULT_FLAGS: dict[str, tuple[str, Any]] = {
    "show_promo_section": ("boolean", True),
    "enable_signup_form": ("boolean", True),
    "show_testimonials": ("boolean", True),
    "cta_text": ("string", "Get started"),
}


@dataclass(frozen=True)
class Experiment:
    key: str
    description: str
    variants: list[dict[str, Any]]
    coverage: float
    seed: str | None
    status: str

    @property
    def variant_names(self) -> list[str]:
        return [v["name"] for v in self.variants]

    @property
    def weights(self) -> list[float]:
        return [float(v["weight"]) for v in self.variants]

    @property
    def control(self) -> str:
        return self.variants[0]["name"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "description": self.description,
            "variants": self.variants,
            "coverage": self.coverage,
            "seed": self.seed,
            "status": self.status,
        }


class AbStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def init_schema(self) -> None:
        metadata.create_all(self.engine)
        now = now_millis()
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, experiments), [{**DEFAULT_EXPERIMENT, "updated_at": now}])
            conn.execute(
                insert_ignore(conn, flags),
                [
                    {"key": key, "type": kind, "value": json.dumps(value), "updated_at": now}
                    for key, (kind, value) in DEFAULT_FLAGS.items()
                ],
            )

    # experiments -------------------------------------------------------------
    def get_experiment(self, key: str) -> Experiment | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(experiments).where(experiments.c.key == key)).mappings().first()
        if row is None:
            return None
        return Experiment(
            key=row["key"],
            description=row["description"] or "",
            variants=list(row["variants"]),
            coverage=float(row["coverage"]),
            seed=row["seed"],
            status=row["status"],
        )

    # assignments -------------------------------------------------------------
    def get_assignment(self, experiment: str, visitor_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(assignments.c.variant).where(
                    assignments.c.experiment == experiment, assignments.c.visitor_id == visitor_id
                )
            ).scalar_one_or_none()

    def save_assignment(self, experiment: str, visitor_id: str, variant: str) -> str:
        """Insert-or-ignore, then read: concurrent first requests all get the one stored variant."""
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignore(conn, assignments),
                {"experiment": experiment, "visitor_id": visitor_id, "variant": variant, "assigned_at": now_millis()},
            )
            return conn.execute(
                select(assignments.c.variant).where(
                    assignments.c.experiment == experiment, assignments.c.visitor_id == visitor_id
                )
            ).scalar_one()

    # flags -------------------------------------------------------------------
    def get_flag_types(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {row.key: row.type for row in conn.execute(select(flags.c.key, flags.c.type))}

    def get_flags(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(flags.c.key, flags.c.value).order_by(flags.c.key))
            return {row.key: json.loads(row.value) for row in rows}

    def set_flags(self, changes: dict[str, Any]) -> dict[str, Any]:
        now = now_millis()
        with self.engine.begin() as conn:
            for key, value in changes.items():
                conn.execute(
                    update(flags).where(flags.c.key == key).values(value=json.dumps(value), updated_at=now)
                )
        return self.get_flags()
