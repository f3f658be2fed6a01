"""POST/GET /flags/<key>/schedule and DELETE /flags/<key>/schedule/<id>: flag changes at a later time,
carried out by the scheduler (see scheduler.py). An experiment's start and stop are its start_at and
stop_at fields (see experiments.py)."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, g

from ab_service.schemas import FlagRecord, FlagScheduleIn
from ab_service.store import current_store as store
from core.events import to_millis
from core.validation import InvalidRecord, parse_record
from core.web import ApiError, json_body, parse_model

bp = Blueprint("flag_schedules", __name__)


def _not_found(key: str) -> ApiError:
    return ApiError(404, f"unknown flag {key!r}", [{"field": "key", "message": "not found"}])


@bp.post("/flags/<key>/schedule")
def schedule_flag_change(key: str):
    flag = store().get_flag(key)
    if flag is None:
        raise _not_found(key)
    body = parse_model(FlagScheduleIn, json_body(), "schedule")
    changes = body.changes()
    problems = [] if changes else [{"field": None, "message": "send at least one field to change"}]
    if body.at <= datetime.now(UTC):
        problems.append({"field": "at", "message": "must be in the future"})
    if problems:
        raise ApiError(400, "invalid schedule: " + ", ".join(str(p["field"] or "body") for p in problems), problems)
    parse_record(FlagRecord, "flag", {**flag, **changes}, error=InvalidRecord)  # fits the flag as it is now
    return store().schedule_flag_change(key, to_millis(body.at), changes, g.actor), 201


@bp.get("/flags/<key>/schedule")
def flag_schedule(key: str):
    if key not in store().flag_types():
        raise _not_found(key)
    return {"schedules": store().flag_schedules(key)}


@bp.delete("/flags/<key>/schedule/<schedule_id>")
def cancel_flag_change(key: str, schedule_id: str):
    if not store().cancel_flag_schedule(key, schedule_id):
        raise ApiError(404, f"no pending change {schedule_id!r} of flag {key!r}",
                       [{"field": "id", "message": "not found"}])
    return {"deleted": schedule_id}
