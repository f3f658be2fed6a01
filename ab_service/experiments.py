"""GET/POST /experiments and GET/PATCH /experiments/<key>: experiment definitions and their status."""
from __future__ import annotations

from flask import Blueprint, g

from ab_service.schemas import ExperimentIn, ExperimentPatch, patch_problems
from ab_service.store import current_store as store
from core.web import ApiError, json_body, listing, parse_model, require_admin

bp = Blueprint("experiments", __name__)


def _not_found(key: str) -> ApiError:
    return ApiError(404, f"unknown experiment {key!r}", [{"field": "key", "message": "not found"}])


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
@require_admin
def create_experiment():
    experiment = parse_model(ExperimentIn, json_body(), "experiment")
    created = store().create_experiment(experiment.model_dump(), g.actor)
    if created is None:
        raise ApiError(409, f"experiment {experiment.key!r} already exists",
                       [{"field": "key", "message": "already exists"}], code="conflict")
    return created.as_dict(), 201


@bp.patch("/experiments/<key>")
@require_admin
def update_experiment(key: str):
    current = store().experiment_row(key)  # as stored: a change may repair a row that does not fit
    if current is None:
        raise _not_found(key)
    patch = parse_model(ExperimentPatch, json_body(), "experiment")
    problems = patch_problems(current, patch)
    if problems:
        raise ApiError(400, "invalid change: " + ", ".join(p["field"] for p in problems), problems)
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(400, "nothing to change", [{"field": None, "message": "send at least one field"}])
    return store().update_experiment(key, changes, g.actor).as_dict()
