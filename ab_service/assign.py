"""GET /assign: deterministic, sticky variant assignment."""
from __future__ import annotations

from flask import Blueprint, request

from ab_service.store import Experiment
from ab_service.store import current_store as ab_store
from core import bucketing
from core.web import ApiError

bp = Blueprint("assign", __name__)

MAX_VISITOR_ID = 128


def decide(experiment: Experiment, visitor_id: str, stored: str | None) -> tuple[str, bool, bool]:
    return bucketing.decide(
        visitor_id, experiment.variant_names, experiment.weights, experiment.coverage,
        experiment.seed or experiment.key, experiment.status, stored,
    )


@bp.get("/assign")
def assign():
    visitor_id = request.args.get("visitor_id", "").strip()
    key = request.args.get("experiment", "landing").strip() or "landing"
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
    variant, in_experiment, persist = decide(experiment, visitor_id, stored)
    if persist:
        variant = store.save_assignment(key, visitor_id, variant)
    return {
        "visitor_id": visitor_id,
        "experiment": key,
        "variant": variant,
        "in_experiment": in_experiment,
        "status": experiment.status,
    }
