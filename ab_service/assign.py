"""GET /assign: deterministic, sticky variant assignment."""
from __future__ import annotations

from flask import Blueprint, request

from ab_service.store import current_store as ab_store
from core.events import MAX_VISITOR_ID
from core.experiments import DEFAULT_EXPERIMENT, decide
from core.web import ApiError

bp = Blueprint("assign", __name__)


@bp.get("/assign")
def assign():
    visitor_id = request.args.get("visitor_id", "").strip()
    key = request.args.get("experiment", DEFAULT_EXPERIMENT).strip() or DEFAULT_EXPERIMENT
    if not visitor_id:
        raise ApiError(400, "visitor_id is required", [{"field": "visitor_id", "message": "required"}])
    if len(visitor_id) > MAX_VISITOR_ID:
        raise ApiError(400, f"visitor_id may be at most {MAX_VISITOR_ID} characters",
                       [{"field": "visitor_id", "message": "too long"}])
    store = ab_store()
    experiment = store.get_experiment(key)
    if experiment is None:
        raise ApiError(404, f"unknown experiment {key!r}", [{"field": "experiment", "message": "not found"}])
    stored = store.get_assignment(key, visitor_id) if experiment.status == "running" else None
    assignment = decide(experiment, visitor_id, stored)
    variant = store.save_assignment(key, visitor_id, assignment.variant) if assignment.new else assignment.variant
    return {
        "visitor_id": visitor_id,
        "experiment": key,
        "variant": variant,
        "in_experiment": assignment.in_experiment,
        "status": experiment.status,
    }
