"""GET/POST /experiments and GET/PATCH /experiments/<key>: experiment definitions and their status."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, g

from ab_service.schemas import (
    ExperimentIn,
    ExperimentPatch,
    ExperimentRecord,
    override_problems,
    patch_changes,
    patch_problems,
    schedule_problems,
    stored_overrides,
)
from ab_service.store import current_store as store
from core.experiments import Experiment, conflicts
from core.validation import InvalidRecord, parse_record
from core.web import ApiError, json_body, listing, parse_model

bp = Blueprint("experiments", __name__)


def _not_found(key: str) -> ApiError:
    return ApiError(404, f"unknown experiment {key!r}", [{"field": "key", "message": "not found"}])


def _check_overrides(experiment: Experiment) -> None:
    """400 naming each override that is not a flag or does not fit it."""
    flags, _ = store().list_flags()
    problems = override_problems(experiment.as_dict()["variants"], {flag["key"]: flag for flag in flags})
    if problems:
        raise ApiError(400, "invalid experiment: " + ", ".join(p["field"] for p in problems), problems)


def _check_conflicts(experiment: Experiment) -> None:
    """409 when a running experiment that can share visitors with this one overrides one of its flags."""
    others, _ = store().list_experiments()
    found = conflicts(experiment, others)
    if found:
        raise ApiError(
            409, "; ".join(f"the running experiment {other!r} overrides {flag!r} too and can share its visitors"
                           for other, flag in found)
            + ": stop it, or give both the same namespace with disjoint ranges",
            [{"field": f"overrides.{flag}", "message": f"also overridden by the running experiment {other!r}"}
             for other, flag in found], code="conflict")


def _check_schedule(status: str | None, times: dict[str, Any], new: set[str]) -> None:
    """400 when the start or stop time being set is in the past, or the stop is not after the start."""
    start_at, stop_at = (datetime.fromisoformat(times[name]) if times.get(name) else None
                         for name in ("start_at", "stop_at"))
    problems = schedule_problems(status, start_at, stop_at, new, datetime.now(UTC))
    if problems:
        raise ApiError(400, "invalid schedule: " + ", ".join(p["field"] for p in problems), problems)


def check_start(current: dict[str, Any]) -> None:
    """The checks of a manual start, for the scheduler's start of the stored row `current` (under
    experiment_changes): InvalidRecord when it does not fit, 400 for overrides that do not fit their
    flags, 409 when a running experiment overrides the same flags for the same visitors."""
    experiment = _changed(current, {"status": "running"})
    _check_overrides(experiment)
    _check_conflicts(experiment)


def _changed(current: dict[str, Any], changes: dict[str, Any]) -> Experiment:
    """The experiment a change leaves; InvalidRecord (400) when it does not fit the record."""
    record = parse_record(ExperimentRecord, "experiment", {**current, **changes}, error=InvalidRecord)
    return Experiment.from_dict(record.model_dump())


@bp.get("/experiments")
def list_experiments():
    experiments, unreadable = store().list_experiments()
    return listing("experiments", [e.as_dict() for e in experiments], unreadable)


@bp.get("/experiments/<key>")
def get_experiment(key: str):
    experiment = store().get_experiment(key)
    if experiment is None:
        raise _not_found(key)
    return experiment.as_dict()


@bp.post("/experiments")
def create_experiment():
    body = parse_model(ExperimentIn, json_body(), "experiment")
    data = body.model_dump()
    _check_schedule(body.status, data, body.model_fields_set & {"start_at", "stop_at"})
    experiment = Experiment.from_dict(data)
    taken = ApiError(409, f"experiment {experiment.key!r} already exists",
                     [{"field": "key", "message": "already exists"}], code="conflict")
    with store().experiment_changes():
        _check_overrides(experiment)
        if store().experiment_row(experiment.key) is not None:
            raise taken
        if experiment.status == "running":
            _check_conflicts(experiment)
        created = store().create_experiment(data, g.actor)
    if created is None:
        raise taken
    return created.as_dict(), 201


@bp.patch("/experiments/<key>")
def update_experiment(key: str):
    patch = parse_model(ExperimentPatch, json_body(), "experiment")
    with store().experiment_changes():
        current = store().experiment_row(key)  # as stored: a change may repair a row that does not fit
        if current is None:
            raise _not_found(key)
        problems = patch_problems(current, patch)
        if problems:
            raise ApiError(400, "invalid change: " + ", ".join(p["field"] for p in problems), problems)
        changes = patch_changes(current, patch)
        if not changes:
            raise ApiError(400, "nothing to change", [{"field": None, "message": "send at least one field"}])
        changed = _changed(current, changes)
        _check_schedule(changed.status, changed.as_dict(), patch.model_fields_set & {"start_at", "stop_at"})
        if "variants" in changes:
            _check_overrides(changed)
        overridden_before = {flag for overrides in stored_overrides(current.get("variants")).values()
                             for flag in overrides}
        started = current.get("status") != "running"
        if changed.status == "running" and (started or changed.overridden_flags - overridden_before):
            _check_conflicts(changed)
        return store().update_experiment(key, changes, g.actor).as_dict()
