"""ab_service storage: experiments, sticky assignments, feature flags and the audit log."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
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
    cast,
    func,
    insert,
    select,
    update,
)

from ab_service.schemas import ExperimentRecord, FlagRecord
from core.db import exclusive, find_rows, insert_ignore, insert_new, now_millis, run_write
from core.experiments import LANDING_EXPERIMENT, Experiment
from core.flags import DEFAULT_FLAGS
from core.group_commit import GroupCommit
from core.migrate import upgrade
from core.validation import InvalidRecord, UnreadableRecord, parse_record

log = logging.getLogger(__name__)

metadata = MetaData()
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_ab"

experiments = Table(
    "experiments",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    # [{"name": "A", "weight": 0.5, "overrides": {flag: value}}, ...]; the first is the control
    Column("variants", JSON, nullable=False),
    Column("coverage", Float, nullable=False, default=1.0),
    Column("seed", String(128), nullable=True),
    Column("status", String(16), nullable=False, default="draft"),
    Column("namespace", JSON(none_as_null=True), nullable=True),  # {"name", "start", "end"}
    Column("condition", JSON(none_as_null=True), nullable=True),  # a GrowthBook condition
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
    Column("allowed", Text, nullable=True),  # JSON list of the only values a string flag accepts; NULL: any
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


EXPERIMENT_JSON = ("variants", "namespace", "condition")
FLAG_JSON = ("value", "off_value", "allowed")


def _loads_or_text(text: Any) -> Any:
    """A JSON column's value, or its text as it is when that is not JSON (for the audit log)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _experiment(row) -> Experiment:
    """A stored row as an Experiment; UnreadableRecord when it does not fit the record."""
    return Experiment.from_dict(parse_record(ExperimentRecord, "experiment", row, EXPERIMENT_JSON).model_dump())


def _flag(row) -> dict[str, Any]:
    """A stored row as a flag definition; UnreadableRecord when it does not fit the record."""
    return parse_record(FlagRecord, "flag", row, FLAG_JSON).model_dump()


def _readable(rows, parse) -> tuple[list, list[UnreadableRecord]]:
    """Every row that parses, and what is wrong with each one that does not."""
    records, unreadable = [], []
    for row in rows:
        try:
            records.append(parse(row))
        except UnreadableRecord as exc:
            log.error("stored record cannot be read: %s %s", exc, exc.problems)
            unreadable.append(exc)
    return records, unreadable


def _encoded(values: dict[str, Any], json_fields: tuple[str, ...]) -> dict[str, Any]:
    """Values as the row stores them: JSON columns as text (None as NULL)."""
    return {k: json.dumps(v) if k in json_fields and v is not None else v for k, v in values.items()}


def _as_stored(row, json_fields: tuple[str, ...]) -> dict[str, Any]:
    """A stored row's fields, JSON columns parsed where they hold JSON: what the audit log keeps as the
    old value, and what the rules of a change are checked against, whether or not the row fits."""
    return {k: _loads_or_text(v) if k in json_fields else v for k, v in row.items() if k in RECORD_FIELDS}


RECORD_FIELDS = set(ExperimentRecord.model_fields) | set(FlagRecord.model_fields)
# JSON columns are read as text and parsed by the record model, so a row that is not valid JSON is
# reported as unreadable instead of failing the whole query.
EXPERIMENT_COLUMNS = [cast(c, Text).label(c.name) if c.name in EXPERIMENT_JSON else c
                      for c in experiments.c if c.name in ExperimentRecord.model_fields]
FLAG_COLUMNS = [c for c in flags.c if c.name in FlagRecord.model_fields]
ASSIGNMENT_COLUMNS = ("experiment", "visitor_id", "variant", "assigned_at")
# Built once: the assignment path runs them on every request.
EXPERIMENT_BY_KEY = select(*EXPERIMENT_COLUMNS).where(experiments.c.key == bindparam("key"))
VARIANT_OF = select(assignments.c.variant).where(assignments.c.experiment == bindparam("experiment"),
                                                 assignments.c.visitor_id == bindparam("visitor_id"))


def seed(conn: Connection) -> None:
    """What every installation starts with: the built-in experiment and the default flags, each inserted
    unless its key is taken (an admin's changes are kept)."""
    now = now_millis()
    conn.execute(insert_ignore(conn, experiments),
                 [{**LANDING_EXPERIMENT.as_dict(), "created_at": now, "updated_at": now}])
    conn.execute(insert_ignore(conn, flags),
                 [{**_encoded(flag, FLAG_JSON), "updated_at": now} for flag in DEFAULT_FLAGS])


class AbStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._new_assignments: GroupCommit[tuple[list[str], int]] = GroupCommit(self._save_assignments)

    def init_schema(self) -> None:
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE, seed=seed)

    def last_change(self) -> int:
        """When a flag or an experiment last changed (milliseconds since the epoch)."""
        with self.engine.connect() as conn:
            return max(conn.execute(select(func.max(table.c.updated_at))).scalar_one() or 0
                       for table in (flags, experiments))

    @staticmethod
    def _audit(conn: Connection, actor: str, entity: str, key: str, old: Any, new: Any) -> None:
        conn.execute(
            insert(audit_log).values(
                at=now_millis(), actor=actor, entity=entity, key=key, action="update" if old is not None else "create",
                old=json.dumps(old) if old is not None else None, new=json.dumps(new),
            )
        )

    # experiments -------------------------------------------------------------
    def experiment_row(self, key: str) -> dict[str, Any] | None:
        """The stored row as it is (variants parsed when they are JSON), whether or not it fits the record."""
        with self.engine.connect() as conn:
            row = conn.execute(EXPERIMENT_BY_KEY, {"key": key}).mappings().first()
        return _as_stored(row, EXPERIMENT_JSON) if row else None

    def get_experiment(self, key: str) -> Experiment | None:
        """The experiment, None when there is none; UnreadableRecord when its row does not fit the record."""
        with self.engine.connect() as conn:
            row = conn.execute(EXPERIMENT_BY_KEY, {"key": key}).mappings().first()
        return _experiment(row) if row else None

    def list_experiments(self) -> tuple[list[Experiment], list[UnreadableRecord]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*EXPERIMENT_COLUMNS).order_by(experiments.c.key)).mappings().all()
        return _readable(rows, _experiment)

    @contextmanager
    def experiment_changes(self):
        """Experiments change one at a time, across threads, workers and instances, so what a change is
        checked against (the other running experiments, the flags' allowed values) stays as it was until
        the change is written."""
        with exclusive(self.engine, "experiments"):
            yield

    def create_experiment(self, data: dict[str, Any], actor: str) -> Experiment | None:
        """Insert a new experiment; None when the key is taken, InvalidRecord when data does not fit."""
        record = parse_record(ExperimentRecord, "experiment", data, error=InvalidRecord).model_dump()
        now = now_millis()
        with self.engine.begin() as conn:
            created = conn.execute(
                insert_ignore(conn, experiments).returning(experiments.c.key),
                {**record, "created_at": now, "updated_at": now},
            ).first()
            if created is None:
                return None
            self._audit(conn, actor, "experiment", record["key"], None, record)
        return Experiment.from_dict(record)

    def update_experiment(self, key: str, changes: dict[str, Any], actor: str) -> Experiment:
        """Apply changes when the experiment they leave fits the record (InvalidRecord otherwise), so a
        change can also repair a row that did not."""
        with self.engine.begin() as conn:
            row = conn.execute(select(*EXPERIMENT_COLUMNS).where(experiments.c.key == key).with_for_update()
                               ).mappings().one()
            record = parse_record(ExperimentRecord, "experiment", {**row, **_encoded(changes, EXPERIMENT_JSON)},
                                  EXPERIMENT_JSON, InvalidRecord).model_dump()
            conn.execute(update(experiments).where(experiments.c.key == key).values(**changes, updated_at=now_millis()))
            self._audit(conn, actor, "experiment", key, _as_stored(row, EXPERIMENT_JSON), record)
        return Experiment.from_dict(record)

    # assignments -------------------------------------------------------------
    def get_assignment(self, experiment: str, visitor_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(VARIANT_OF, {"experiment": experiment, "visitor_id": visitor_id}).scalar_one_or_none()

    def save_assignment(self, experiment: str, visitor_id: str, variant: str) -> str:
        """Store the first assignment and return the stored variant: concurrent first requests all
        get the one stored. New visitors arriving together share one transaction (group commit)."""
        [stored], _ = self._new_assignments.submit([(experiment, visitor_id, variant, now_millis())])
        return stored

    def record_assignments(self, rows: list[tuple[str, str, str]]) -> int:
        """Store each (experiment, visitor_id, variant) unless the visitor has a variant in that experiment
        already (the first assignment wins); how many were new. Shares transactions with save_assignment."""
        now = now_millis()
        _, new = self._new_assignments.submit([(experiment, visitor_id, variant, now)
                                               for experiment, visitor_id, variant in rows])
        return new

    def _save_assignments(self, groups: list[list[tuple]]) -> list[tuple[list[str], int]]:
        """Insert-if-new every caller's assignments, then read back what is stored: for each caller, the
        stored variant of each of its rows and how many of its rows were new."""
        rows = [row for group in groups for row in group]
        keys = list(dict.fromkeys((experiment, visitor_id) for experiment, visitor_id, *_ in rows))

        def save(conn: Connection) -> tuple[list[tuple], dict[tuple[str, str], str]]:
            new = insert_new(conn, assignments.name, ASSIGNMENT_COLUMNS, rows, key=ASSIGNMENT_COLUMNS[:2])
            return new, {(e, v): variant for e, v, variant in find_rows(
                conn, assignments.name, ASSIGNMENT_COLUMNS[:2], ASSIGNMENT_COLUMNS[:3], keys)}

        new, stored = run_write(self.engine, save)  # in one transaction, run again after a deadlock
        inserted = {id(row) for row in new}  # the rows written, as given (a key repeated: its first row)
        return [([stored[row[:2]] for row in group], sum(id(row) in inserted for row in group)) for group in groups]

    # flags -------------------------------------------------------------------
    def list_flags(self) -> tuple[list[dict[str, Any]], list[UnreadableRecord]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*FLAG_COLUMNS).order_by(flags.c.key)).mappings().all()
        return _readable(rows, _flag)

    def get_flag(self, key: str) -> dict[str, Any] | None:
        """The flag, None when there is none; UnreadableRecord when its row does not fit the record."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*FLAG_COLUMNS).where(flags.c.key == key)).mappings().first()
        return _flag(row) if row else None

    def flag_types(self) -> dict[str, str]:
        """Every flag's key and type as stored, readable or not."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(flags.c.key, flags.c.type)).all())

    def create_flag(self, flag: dict[str, Any], actor: str) -> dict[str, Any] | None:
        """Insert a new flag; None when the key is taken, InvalidRecord when flag does not fit."""
        record = parse_record(FlagRecord, "flag", flag, error=InvalidRecord).model_dump()
        with self.engine.begin() as conn:
            created = conn.execute(insert_ignore(conn, flags).returning(flags.c.key),
                                   {**_encoded(record, FLAG_JSON), "updated_at": now_millis()}).first()
            if created is None:
                return None
            self._audit(conn, actor, "flag", record["key"], None, record)
        return record

    def update_flags(self, changes: dict[str, dict[str, Any]], actor: str) -> dict[str, dict[str, Any]]:
        """Apply {key: {field: new value}} to several flags in one transaction, each change audited, and
        return the flags changed; nothing when any flag would be left not fitting the record (InvalidRecord),
        so a change can also repair a row that did not. The transaction runs again after a deadlock."""
        now = now_millis()

        def apply(conn: Connection) -> dict[str, dict[str, Any]]:
            changed = {}
            for key, fields in sorted(changes.items()):  # rows locked in one order
                row = conn.execute(select(*FLAG_COLUMNS).where(flags.c.key == key).with_for_update()
                                   ).mappings().one()
                stored = _encoded(fields, FLAG_JSON)
                record = parse_record(FlagRecord, "flag", {**row, **stored}, FLAG_JSON, InvalidRecord).model_dump()
                conn.execute(update(flags).where(flags.c.key == key).values(**stored, updated_at=now))
                self._audit(conn, actor, "flag", key, _as_stored(row, FLAG_JSON), record)
                changed[key] = record
            return changed

        return run_write(self.engine, apply)

    # audit -------------------------------------------------------------------
    def audit_entries(self, limit: int = 200) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {"id": r["id"], "at": r["at"], "actor": r["actor"], "entity": r["entity"], "key": r["key"],
                 "action": r["action"], "old": _loads_or_text(r["old"]) if r["old"] else None,
                 "new": _loads_or_text(r["new"])}
                for r in conn.execute(query).mappings()
            ]


def current_store() -> AbStore:
    """The store of the app handling the current request."""
    return current_app.extensions["ab_store"]
