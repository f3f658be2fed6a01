"""ab_service storage: experiments, sticky assignments, feature flags, the audit log, schedules, webhooks
and the alerts they deliver."""
from __future__ import annotations

import json
import logging
import uuid
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
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
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import NoResultFound

from ab_service.schemas import ExperimentRecord, FlagRecord, iso_time
from core.db import CompiledRead, exclusive, find_rows, insert_ignore, insert_new, now_millis, run_write
from core.events import from_millis, to_millis
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
    Column("primary_metric", String(64), nullable=True),  # metric keys of metrics_service
    Column("secondary_metrics", JSON(none_as_null=True), nullable=True),  # [key, ...]; NULL: none
    Column("guardrail_metrics", JSON(none_as_null=True), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("start_at", BigInteger, nullable=True),  # pending scheduled start (ms); NULL once carried out
    Column("stop_at", BigInteger, nullable=True),  # pending scheduled stop (ms)
    Column("started_at", BigInteger, nullable=True),  # when it last became running (ms)
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
    Column("action", String(16), nullable=False),  # "create" | "update" | "refused" (a scheduled change)
    Column("old", Text, nullable=True),  # JSON
    Column("new", Text, nullable=False),  # JSON
)

flag_schedules = Table(
    "flag_schedules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key", String(64), nullable=False, index=True),
    Column("due_at", BigInteger, nullable=False, index=True),
    Column("changes", Text, nullable=False),  # JSON: {field: new value}
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event names
    Column("secret", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

alerts = Table(  # one row per condition: a condition raised again is not a new alert
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),  # the event id, sent as the Idempotency-Key
    Column("condition", String(255), nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("experiment", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body every webhook receives
    Column("created_at", BigInteger, nullable=False),
)

webhook_deliveries = Table(  # the outbox: one row per alert and webhook subscribed to its event
    "webhook_deliveries",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("webhook_id", String(36), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False, index=True),  # also the lease of a send under way
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_run", BigInteger, nullable=False),
)


EXPERIMENT_TIMES = ("start_at", "stop_at")  # stored as milliseconds, answered as ISO 8601
EXPERIMENT_JSON = ("variants", "namespace", "condition", "secondary_metrics", "guardrail_metrics")
FLAG_JSON = ("value", "off_value", "allowed")
SCHEDULER = "scheduler"  # the actor of scheduled changes in the audit log


def _times_read(values) -> dict[str, Any]:
    """A stored experiment row with its times as the API writes them."""
    return {k: iso_time(from_millis(v)) if k in EXPERIMENT_TIMES and isinstance(v, int) else v
            for k, v in values.items()}


def _times_stored(values: dict[str, Any]) -> dict[str, Any]:
    """Experiment fields with their times as the row stores them (milliseconds)."""
    return {k: to_millis(datetime.fromisoformat(v)) if k in EXPERIMENT_TIMES and isinstance(v, str) else v
            for k, v in values.items()}


def _loads_or_text(text: Any) -> Any:
    """A JSON column's value, or its text as it is when that is not JSON (for the audit log)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _experiment(row) -> Experiment:
    """A stored row as an Experiment; UnreadableRecord when it does not fit the record."""
    return Experiment.from_dict(parse_record(ExperimentRecord, "experiment", _times_read(row), EXPERIMENT_JSON
                                             ).model_dump())


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
# Built once: the experiment and assignment paths run them on every request.
EXPERIMENT_BY_KEY = select(*EXPERIMENT_COLUMNS).where(experiments.c.key == bindparam("key"))
# The experiment's row and, as its last column, the visitor's stored variant (NULL: none): /assign's one read.
EXPERIMENT_AND_VARIANT = (
    select(*EXPERIMENT_COLUMNS, assignments.c.variant)
    .select_from(experiments.outerjoin(assignments, and_(assignments.c.experiment == experiments.c.key,
                                                         assignments.c.visitor_id == bindparam("visitor_id"))))
    .where(experiments.c.key == bindparam("key")))
EXPERIMENT_FIELDS = tuple(column.name for column in EXPERIMENT_COLUMNS)
# Distinct experiment rows whose parse each process keeps (a row changed by any means is a new entry).
PARSED_EXPERIMENTS = 256


def seed(conn: Connection) -> None:
    """What every installation starts with: the built-in experiment and the default flags, each inserted
    unless its key is taken (an admin's changes are kept)."""
    now = now_millis()
    conn.execute(insert_ignore(conn, experiments),
                 [{**LANDING_EXPERIMENT.as_dict(), "created_at": now, "updated_at": now, "started_at": now}])
    conn.execute(insert_ignore(conn, flags),
                 [{**_encoded(flag, FLAG_JSON), "updated_at": now} for flag in DEFAULT_FLAGS])


class AbStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._new_assignments: GroupCommit[tuple[list[str], int]] = GroupCommit(self._save_assignments)
        self._experiment_and_variant = CompiledRead(engine, EXPERIMENT_AND_VARIANT)
        # A stored row's values -> its Experiment: parsing and validating a row costs more than reading it.
        self._parsed = lru_cache(maxsize=PARSED_EXPERIMENTS)(
            lambda values: _experiment(dict(zip(EXPERIMENT_FIELDS, values, strict=True))))

    def init_schema(self) -> None:
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE, seed=seed)

    def last_change(self) -> int:
        """When a flag or an experiment last changed (milliseconds since the epoch)."""
        with self.engine.connect() as conn:
            return max(conn.execute(select(func.max(table.c.updated_at))).scalar_one() or 0
                       for table in (flags, experiments))

    @staticmethod
    def _audit(conn: Connection, actor: str, entity: str, key: str, old: Any, new: Any, action: str | None = None
               ) -> None:
        conn.execute(
            insert(audit_log).values(
                at=now_millis(), actor=actor, entity=entity, key=key,
                action=action or ("update" if old is not None else "create"),
                old=json.dumps(old) if old is not None else None, new=json.dumps(new),
            )
        )

    # experiments -------------------------------------------------------------
    def experiment_row(self, key: str) -> dict[str, Any] | None:
        """The stored row as it is (variants parsed when they are JSON), whether or not it fits the record."""
        with self.engine.connect() as conn:
            row = conn.execute(EXPERIMENT_BY_KEY, {"key": key}).mappings().first()
        return _times_read(_as_stored(row, EXPERIMENT_JSON)) if row else None

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
            started = now if record["status"] == "running" else None
            created = conn.execute(
                insert_ignore(conn, experiments).returning(experiments.c.key),
                {**_times_stored(record), "created_at": now, "updated_at": now, "started_at": started},
            ).first()
            if created is None:
                return None
            self._audit(conn, actor, "experiment", record["key"], None, record)
            if started:
                self._raise_alert(conn, "experiment.started", record["key"], {"actor": actor})
        return Experiment.from_dict(record)

    def update_experiment(self, key: str, changes: dict[str, Any], actor: str) -> Experiment:
        """Apply changes when the experiment they leave fits the record (InvalidRecord otherwise), so a
        change can also repair a row that did not."""
        with self.engine.begin() as conn:
            row = conn.execute(select(*EXPERIMENT_COLUMNS).where(experiments.c.key == key).with_for_update()
                               ).mappings().one()
            return self._change_experiment(conn, row, changes, actor)

    def _change_experiment(self, conn: Connection, row, changes: dict[str, Any], actor: str) -> Experiment:
        """Write changes to the (locked) row, audited. Starting clears a pending start and stopping a
        pending stop; a change of status raises experiment.started or experiment.stopped, in the same
        transaction."""
        key, status = row["key"], changes.get("status", row["status"])
        if status != row["status"]:
            changes = {**changes, ("start_at" if status == "running" else "stop_at"): None}
        changed = {**_times_read(row), **_encoded(changes, EXPERIMENT_JSON)}
        record = parse_record(ExperimentRecord, "experiment", changed, EXPERIMENT_JSON, InvalidRecord).model_dump()
        now = now_millis()
        started = {"started_at": now} if status == "running" != row["status"] else {}
        conn.execute(update(experiments).where(experiments.c.key == key).values(
            **_times_stored(changes), **started, updated_at=now))
        self._audit(conn, actor, "experiment", key, _times_read(_as_stored(row, EXPERIMENT_JSON)), record)
        if status != row["status"]:
            self._raise_alert(conn, "experiment.started" if status == "running" else "experiment.stopped", key,
                              {"actor": actor, "from": row["status"], "to": status})
        return Experiment.from_dict(record)

    # schedules ---------------------------------------------------------------
    def due_experiment_times(self, now: int) -> list[tuple[str, str, int]]:
        """(key, "start_at" or "stop_at", due time) of every scheduled transition due at `now`, starts first."""
        due = []
        with self.engine.connect() as conn:
            for name in EXPERIMENT_TIMES:
                column = experiments.c[name]
                due += [(key, name, at) for key, at in conn.execute(
                    select(experiments.c.key, column).where(column <= now).order_by(column))]
        return due

    def carry_out_experiment_time(self, key: str, name: str, due: int, changes: dict[str, Any]) -> Experiment | None:
        """Apply a scheduled transition as the scheduler, once: the row is claimed by its due time, so
        only the first of several workers (or a run after a restart) finds it; None for the others."""
        def work(conn: Connection) -> Experiment | None:
            row = conn.execute(select(*EXPERIMENT_COLUMNS).where(experiments.c.key == key, experiments.c[name] == due)
                               .with_for_update()).mappings().first()
            if row is None:
                return None
            return self._change_experiment(conn, row, {**changes, name: None}, SCHEDULER)

        return run_write(self.engine, work)

    def refuse_experiment_time(self, key: str, name: str, due: int, reason: str) -> bool:
        """Clear a scheduled transition that cannot be carried out, with the reason in the audit log
        (action "refused"), once: False when another worker did it first."""
        def work(conn: Connection) -> bool:
            cleared = conn.execute(update(experiments).where(experiments.c.key == key, experiments.c[name] == due)
                                   .values(**{name: None})).rowcount
            if cleared:
                self._audit(conn, SCHEDULER, "experiment", key, {name: iso_time(from_millis(due))},
                            {name: None, "refused": reason}, action="refused")
            return bool(cleared)

        return run_write(self.engine, work)

    def started_at(self) -> dict[str, int]:
        """{key: when it last became running} of the running experiments."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(experiments.c.key, experiments.c.started_at)
                                     .where(experiments.c.status == "running")).all())

    # assignments -------------------------------------------------------------
    def experiment_and_assignment(self, key: str, visitor_id: str) -> tuple[Experiment | None, str | None]:
        """The experiment (None when there is none; UnreadableRecord when its row does not fit the record)
        and the variant stored for the visitor in it (None: none), in one read. The row is read every
        time, so a change made by any means is seen at once; only its parse is remembered."""
        row = self._experiment_and_variant.first(key=key, visitor_id=visitor_id)
        if row is None:
            return None, None
        *values, stored = row
        return self._parsed(tuple(values)), stored

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
            stored = {(e, v): variant for e, v, variant, _ in new}  # only the keys stored before are read
            before = [key for key in keys if key not in stored]
            if before:
                stored.update(((e, v), variant) for e, v, variant in find_rows(
                    conn, assignments.name, ASSIGNMENT_COLUMNS[:2], ASSIGNMENT_COLUMNS[:3], before))
            return new, stored

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
            return {key: self._change_flag(conn, key, fields, actor, now)
                    for key, fields in sorted(changes.items())}  # rows locked in one order

        return run_write(self.engine, apply)

    def _change_flag(self, conn: Connection, key: str, fields: dict[str, Any], actor: str, now: int) -> dict[str, Any]:
        row = conn.execute(select(*FLAG_COLUMNS).where(flags.c.key == key).with_for_update()).mappings().one()
        stored = _encoded(fields, FLAG_JSON)
        record = parse_record(FlagRecord, "flag", {**row, **stored}, FLAG_JSON, InvalidRecord).model_dump()
        conn.execute(update(flags).where(flags.c.key == key).values(**stored, updated_at=now))
        self._audit(conn, actor, "flag", key, _as_stored(row, FLAG_JSON), record)
        return record

    def schedule_flag_change(self, key: str, due: int, changes: dict[str, Any], actor: str) -> dict[str, Any]:
        row = {"id": str(uuid.uuid4()), "key": key, "due_at": due, "changes": json.dumps(changes),
               "created_by": actor, "created_at": now_millis()}
        with self.engine.begin() as conn:
            conn.execute(insert(flag_schedules), row)
        return _flag_schedule(row)

    def flag_schedules(self, key: str | None = None, due_by: int | None = None) -> list[dict[str, Any]]:
        """Pending scheduled flag changes, soonest first: of one flag, or every one due by a time."""
        query = select(flag_schedules).order_by(flag_schedules.c.due_at, flag_schedules.c.id)
        if key is not None:
            query = query.where(flag_schedules.c.key == key)
        if due_by is not None:
            query = query.where(flag_schedules.c.due_at <= due_by)
        with self.engine.connect() as conn:
            return [_flag_schedule(row) for row in conn.execute(query).mappings()]

    def cancel_flag_schedule(self, key: str, schedule_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(flag_schedules).where(
                flag_schedules.c.key == key, flag_schedules.c.id == schedule_id)).rowcount)

    def carry_out_flag_schedule(self, schedule: dict[str, Any]) -> str | None:
        """Apply a scheduled flag change as the scheduler, once (the row is claimed by deleting it, in the
        transaction that applies the change): "done", "refused" when the flag is gone or the change no
        longer fits it (recorded in the audit log), None when another worker had it."""
        def work(conn: Connection) -> str | None:
            if not conn.execute(delete(flag_schedules).where(flag_schedules.c.id == schedule["id"])).rowcount:
                return None
            try:  # _change_flag checks the change before it writes anything
                self._change_flag(conn, schedule["key"], schedule["changes"], SCHEDULER, now_millis())
                return "done"
            except (InvalidRecord, NoResultFound) as exc:
                self._audit(conn, SCHEDULER, "flag", schedule["key"], None,
                            {**schedule["changes"], "refused": str(exc)}, action="refused")
                return "refused"

        return run_write(self.engine, work)

    # webhooks and alerts -----------------------------------------------------
    def create_webhook(self, url: str, events: list[str], secret: str, actor: str) -> dict[str, Any]:
        row = {"id": str(uuid.uuid4()), "url": url, "events": json.dumps(events), "secret": secret,
               "created_by": actor, "created_at": now_millis()}
        with self.engine.begin() as conn:
            conn.execute(insert(webhooks), row)
        return _webhook(row)

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook without its secret, with how many of its deliveries are done and waiting."""
        counts = select(webhook_deliveries.c.webhook_id, func.count(webhook_deliveries.c.delivered_at).label("done"),
                        func.count().label("all")).group_by(webhook_deliveries.c.webhook_id).subquery()
        query = (select(webhooks, counts.c.done, counts.c.all).outerjoin(counts, counts.c.webhook_id == webhooks.c.id)
                 .order_by(webhooks.c.created_at, webhooks.c.id))
        with self.engine.connect() as conn:
            return [{**_webhook(row), "delivered": row["done"] or 0, "pending": (row["all"] or 0) - (row["done"] or 0)}
                    for row in conn.execute(query).mappings()]

    def delete_webhook(self, webhook_id: str) -> bool:
        """Remove a webhook and what was still to be delivered to it."""
        with self.engine.begin() as conn:
            conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
            return bool(conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id)).rowcount)

    def raise_alert(self, event: str, experiment: str, data: dict[str, Any], condition: str) -> bool:
        """Record the alert for a condition and queue it for every webhook subscribed to its event, unless
        the condition was raised before; whether it is new."""
        return run_write(self.engine, lambda conn: self._raise_alert(conn, event, experiment, data, condition))

    def clear_condition(self, condition: str) -> None:
        """Set aside the alert of a condition that no longer holds (its deliveries go on), so the condition
        raises a new alert when it holds again."""
        with self.engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.condition == condition).values(
                condition=alerts.c.condition + "#" + alerts.c.id))

    @staticmethod
    def _raise_alert(conn: Connection, event: str, experiment: str, data: dict[str, Any],
                     condition: str | None = None) -> bool:
        """In the caller's transaction. Without a condition (a transition) every call is a new alert."""
        alert_id = str(uuid.uuid4())
        now = now_millis()
        payload = {"id": alert_id, "event": event, "created_at": iso_time(from_millis(now)),
                   "experiment": experiment, "data": data}
        new = conn.execute(insert_ignore(conn, alerts).returning(alerts.c.id), {
            "id": alert_id, "condition": condition or f"{event}:{experiment}:{alert_id}", "event": event,
            "experiment": experiment, "payload": json.dumps(payload, separators=(",", ":")), "created_at": now,
        }).first()
        if new is None:
            return False
        subscribed = [webhook_id for webhook_id, events in conn.execute(select(webhooks.c.id, webhooks.c.events))
                      if event in json.loads(events)]
        if subscribed:
            conn.execute(insert(webhook_deliveries), [
                {"alert_id": alert_id, "webhook_id": webhook_id, "attempts": 0, "next_attempt_at": now}
                for webhook_id in subscribed])
        return True

    def due_deliveries(self, now: int, limit: int) -> list[dict[str, Any]]:
        """Deliveries whose next attempt is due, oldest first, with the alert's body and the webhook's URL
        and secret."""
        query = (select(webhook_deliveries.c.alert_id, webhook_deliveries.c.webhook_id, webhook_deliveries.c.attempts,
                        webhook_deliveries.c.next_attempt_at, alerts.c.event, alerts.c.payload, webhooks.c.url,
                        webhooks.c.secret)
                 .join(alerts, alerts.c.id == webhook_deliveries.c.alert_id)
                 .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                 .where(webhook_deliveries.c.delivered_at.is_(None), webhook_deliveries.c.next_attempt_at <= now)
                 .order_by(webhook_deliveries.c.next_attempt_at).limit(limit))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def claim_delivery(self, delivery: dict[str, Any], lease_until: int) -> bool:
        """Take a due delivery for one send: its next attempt moves to the end of the lease (so a sender
        that dies mid-send leaves it to be sent again then); False when another sender took it first."""
        with self.engine.begin() as conn:
            return bool(conn.execute(update(webhook_deliveries).where(
                *_delivery(delivery), webhook_deliveries.c.next_attempt_at == delivery["next_attempt_at"],
                webhook_deliveries.c.delivered_at.is_(None)).values(next_attempt_at=lease_until)).rowcount)

    def delivery_done(self, delivery: dict[str, Any], now: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(*_delivery(delivery)).values(
                delivered_at=now, attempts=delivery["attempts"] + 1, last_error=None))

    def delivery_failed(self, delivery: dict[str, Any], retry_at: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(*_delivery(delivery)).values(
                attempts=delivery["attempts"] + 1, next_attempt_at=retry_at, last_error=error[:500]))

    def claim_job(self, name: str, interval_ms: int, now: int) -> bool:
        """Whether this caller runs the periodic job `name` now: at most once per interval across every
        worker and instance (a conditional update of its last run)."""
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, job_runs), {"name": name, "last_run": 0})
            return bool(conn.execute(update(job_runs).where(
                job_runs.c.name == name, job_runs.c.last_run <= now - interval_ms).values(last_run=now)).rowcount)

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


def _flag_schedule(row) -> dict[str, Any]:
    return {"id": row["id"], "key": row["key"], "at": iso_time(from_millis(row["due_at"])),
            "changes": json.loads(row["changes"]), "created_by": row["created_by"]}


def _webhook(row) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "events": json.loads(row["events"]),
            "created_at": iso_time(from_millis(row["created_at"])), "created_by": row["created_by"]}


def _delivery(delivery: dict[str, Any]) -> tuple:
    return (webhook_deliveries.c.alert_id == delivery["alert_id"],
            webhook_deliveries.c.webhook_id == delivery["webhook_id"])


def current_store() -> AbStore:
    """The store of the app handling the current request."""
    return current_app.extensions["ab_store"]
