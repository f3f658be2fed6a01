"""ab_service storage: experiments, sticky assignments, feature flags and the audit log."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)

from core.db import find_rows, insert_ignore, insert_new, now_millis, write_transaction
from core.experiments import LANDING_EXPERIMENT, Experiment
from core.flags import DEFAULT_FLAGS
from core.group_commit import GroupCommit
from core.migrate import upgrade

metadata = MetaData()
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_ab"

experiments = Table(
    "experiments",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("variants", JSON, nullable=False),  # [{"name": "A", "weight": 0.5}, ...]; the first is control
    Column("coverage", Float, nullable=False, default=1.0),
    Column("seed", String(128), nullable=True),
    Column("status", String(16), nullable=False, default="draft"),
    Column("created_at", BigInteger, nullable=False),
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
    Column("value", Text, nullable=False),  # JSON
    Column("off_value", Text, nullable=False),  # JSON: what visitors outside the rollout see
    Column("rollout", Float, nullable=False, default=1.0),
    Column("description", Text, nullable=False, default=""),
    Column("updated_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("entity", String(16), nullable=False),  # "flag" | "experiment"
    Column("key", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # "create" | "update"
    Column("old", Text, nullable=True),  # JSON
    Column("new", Text, nullable=False),  # JSON
)


def _flag(row) -> dict[str, Any]:
    return {
        "key": row["key"],
        "type": row["type"],
        "value": json.loads(row["value"]),
        "off_value": json.loads(row["off_value"]),
        "rollout": float(row["rollout"]),
        "description": row["description"] or "",
    }


def _flag_row(flag: dict[str, Any], now: int) -> dict[str, Any]:
    return {**flag, "value": json.dumps(flag["value"]), "off_value": json.dumps(flag["off_value"]), "updated_at": now}


ASSIGNMENT_COLUMNS = ("experiment", "visitor_id", "variant", "assigned_at")
# Built once: the assignment path runs them on every request.
EXPERIMENT_BY_KEY = select(experiments).where(experiments.c.key == bindparam("key"))
VARIANT_OF = select(assignments.c.variant).where(assignments.c.experiment == bindparam("experiment"),
                                                 assignments.c.visitor_id == bindparam("visitor_id"))


class AbStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._new_assignments: GroupCommit[str] = GroupCommit(self._save_assignments)

    def init_schema(self) -> None:
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE)
        now = now_millis()
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, experiments),
                         [{**LANDING_EXPERIMENT.as_dict(), "created_at": now, "updated_at": now}])
            conn.execute(insert_ignore(conn, flags), [_flag_row(flag, now) for flag in DEFAULT_FLAGS])

    @staticmethod
    def _audit(conn: Connection, actor: str, entity: str, key: str, old: Any, new: Any) -> None:
        conn.execute(
            insert(audit_log).values(
                at=now_millis(), actor=actor, entity=entity, key=key, action="update" if old is not None else "create",
                old=json.dumps(old) if old is not None else None, new=json.dumps(new),
            )
        )

    # experiments -------------------------------------------------------------
    def get_experiment(self, key: str) -> Experiment | None:
        with self.engine.connect() as conn:
            row = conn.execute(EXPERIMENT_BY_KEY, {"key": key}).mappings().first()
        return Experiment.from_dict(row) if row else None

    def list_experiments(self) -> list[Experiment]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(experiments).order_by(experiments.c.key)).mappings().all()
        return [Experiment.from_dict(row) for row in rows]

    def create_experiment(self, data: dict[str, Any], actor: str) -> Experiment | None:
        """Insert a new experiment; None when the key is taken."""
        now = now_millis()
        with self.engine.begin() as conn:
            created = conn.execute(
                insert_ignore(conn, experiments).returning(experiments.c.key),
                {**data, "created_at": now, "updated_at": now},
            ).first()
            if created is None:
                return None
            self._audit(conn, actor, "experiment", data["key"], None, data)
        return self.get_experiment(data["key"])

    def update_experiment(self, key: str, changes: dict[str, Any], actor: str) -> Experiment:
        with self.engine.begin() as conn:
            row = conn.execute(select(experiments).where(experiments.c.key == key)).mappings().one()
            old = Experiment.from_dict(row).as_dict()
            conn.execute(update(experiments).where(experiments.c.key == key).values(**changes, updated_at=now_millis()))
            self._audit(conn, actor, "experiment", key, old, {**old, **changes})
        return self.get_experiment(key)

    # assignments -------------------------------------------------------------
    def get_assignment(self, experiment: str, visitor_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(VARIANT_OF, {"experiment": experiment, "visitor_id": visitor_id}).scalar_one_or_none()

    def save_assignment(self, experiment: str, visitor_id: str, variant: str) -> str:
        """Store the first assignment and return the stored variant: concurrent first requests all
        get the one stored. New visitors arriving together share one transaction (group commit)."""
        return self._new_assignments.submit([(experiment, visitor_id, variant, now_millis())])

    def _save_assignments(self, groups: list[list[tuple]]) -> list[str]:
        """Insert-if-new every caller's assignment, then read back what is stored for each."""
        rows = [row for group in groups for row in group]
        keys = list(dict.fromkeys((experiment, visitor_id) for experiment, visitor_id, *_ in rows))
        with write_transaction(self.engine) as conn:
            insert_new(conn, assignments.name, ASSIGNMENT_COLUMNS, rows, key=ASSIGNMENT_COLUMNS[:2])
            stored = {(e, v): variant for e, v, variant in find_rows(
                conn, assignments.name, ASSIGNMENT_COLUMNS[:2], ASSIGNMENT_COLUMNS[:3], keys)}
        return [stored[group[0][:2]] for group in groups]

    # flags -------------------------------------------------------------------
    def list_flags(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_flag(row) for row in conn.execute(select(flags).order_by(flags.c.key)).mappings()]

    def get_flag(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(flags).where(flags.c.key == key)).mappings().first()
        return _flag(row) if row else None

    def create_flag(self, flag: dict[str, Any], actor: str) -> dict[str, Any] | None:
        """Insert a new flag; None when the key is taken."""
        with self.engine.begin() as conn:
            created = conn.execute(insert_ignore(conn, flags).returning(flags.c.key),
                                   _flag_row(flag, now_millis())).first()
            if created is None:
                return None
            self._audit(conn, actor, "flag", flag["key"], None, flag)
        return self.get_flag(flag["key"])

    def update_flags(self, changes: dict[str, dict[str, Any]], actor: str) -> None:
        """Apply {key: {field: new value}} to several flags in one transaction, each change audited."""
        now = now_millis()
        with self.engine.begin() as conn:
            for key, fields in changes.items():
                row = conn.execute(select(flags).where(flags.c.key == key)).mappings().one()
                old = _flag(row)
                stored = {k: json.dumps(v) if k in ("value", "off_value") else v for k, v in fields.items()}
                conn.execute(update(flags).where(flags.c.key == key).values(**stored, updated_at=now))
                self._audit(conn, actor, "flag", key, old, {**old, **fields})

    # audit -------------------------------------------------------------------
    def audit_entries(self, limit: int = 200) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {"id": r["id"], "at": r["at"], "actor": r["actor"], "entity": r["entity"], "key": r["key"],
                 "action": r["action"], "old": json.loads(r["old"]) if r["old"] else None, "new": json.loads(r["new"])}
                for r in conn.execute(query).mappings()
            ]


def current_store() -> AbStore:
    """The store of the app handling the current request."""
    return current_app.extensions["ab_store"]
