"""GET /assign: deterministic, sticky variant assignment."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, request

from ab_service.store import Experiment
from ab_service.store import current_store as ab_store
from core.bucketing import assign_variant
from core.web import ApiError

bp = Blueprint("assign", __name__)

MAX_VISITOR_ID = 128


@dataclass(frozen=True)
class Decision:
    variant: str
    in_experiment: bool
    persist: bool


def decide(experiment: Experiment, visitor_id: str, stored: str | None) -> Decision:
    """What a visitor sees, given the experiment's state and any stored assignment.

    running: a stored assignment wins (sticky across weight changes); otherwise the hash decides
             and visitors outside coverage see the control without being stored, so raising
             coverage later only adds visitors.
    stopped: everyone sees the control; stored assignments are kept for the record.
    draft:   no one is assigned.
    """
    if experiment.status != "running":
        return Decision(experiment.control, False, False)
    if stored is not None:
        return Decision(stored, True, False)
    variant = assign_variant(
        visitor_id,
        experiment.variant_names,
        experiment.weights,
        experiment.coverage,
        experiment.seed or experiment.key,
    )
    if variant is None:
        return Decision(experiment.control, False, False)
    return Decision(variant, True, True)


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
    decision = decide(experiment, visitor_id, stored)
    variant = store.save_assignment(key, visitor_id, decision.variant) if decision.persist else decision.variant
    return {
        "visitor_id": visitor_id,
        "experiment": key,
        "variant": variant,
        "in_experiment": decision.in_experiment,
        "status": experiment.status,
    }
