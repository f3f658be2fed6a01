"""GET/POST /flags and PATCH /flags/<key>: typed feature flags with percentage rollout."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from ab_service.schemas import FlagIn, FlagPatch
from ab_service.store import current_store as store
from core.experiments import Experiment
from core.flags import default_off_value, value_problem
from core.web import ApiError, json_body, listing, parse_model

bp = Blueprint("flags", __name__)


def _not_found(key: str) -> ApiError:
    return ApiError(404, f"unknown flag {key!r}", [{"field": "key", "message": "not found"}])


@bp.get("/flags")
def list_flags():
    """Full flag definitions (type, value, off_value, rollout); the landing page resolves them per visitor."""
    flags, unreadable = store().list_flags()
    return listing("flags", flags, unreadable)


@bp.get("/flags/<key>")
def get_flag(key: str):
    flag = store().get_flag(key)
    if flag is None:
        raise _not_found(key)
    return flag


@bp.post("/flags")
def create_flag():
    flag = parse_model(FlagIn, json_body(), "flag")
    data = flag.model_dump()
    if "off_value" not in flag.model_fields_set:
        data["off_value"] = default_off_value(flag.type, flag.value)
    created = store().create_flag(data, g.actor)
    if created is None:
        raise ApiError(409, f"flag {flag.key!r} already exists", [{"field": "key", "message": "already exists"}],
                       code="conflict")
    return created, 201


@bp.patch("/flags/<key>")
def update_flag(key: str):
    if key not in store().flag_types():
        raise _not_found(key)
    patch = parse_model(FlagPatch, json_body(), "flag")
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(400, "nothing to change", [{"field": None, "message": "send at least one field"}])
    if "allowed" not in changes:
        return store().update_flags({key: changes}, g.actor)[key]
    with store().experiment_changes():  # overrides are checked against allowed values: one change at a time
        experiments, _ = store().list_experiments()
        problems = _overrides_outside(key, store().flag_types()[key], changes["allowed"], experiments)
        if problems:
            raise ApiError(400, "invalid flag: allowed", problems)
        return store().update_flags({key: changes}, g.actor)[key]


def _overrides_outside(key: str, kind: str, allowed: list[str] | None,
                       experiments: list[Experiment]) -> list[dict[str, Any]]:
    """New allowed values must still hold every experiment's overrides of the flag."""
    problems = []
    for experiment in experiments:
        for variant in experiment.variants:
            problem = value_problem(kind, variant.overrides[key], allowed) if key in variant.overrides else None
            if problem:
                problems.append({"field": "allowed", "message": f"experiment {experiment.key!r}, variant "
                                                                f"{variant.name}: {key} {problem}"})
    return problems
