"""GET /assign: deterministic, sticky variant assignment; POST /assignments: assignments the landing
page made itself, to be remembered."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from pydantic import TypeAdapter, ValidationError

from ab_service.schemas import AssignmentIn, Assignments, AssignmentsStored, AssignQuery
from ab_service.store import current_store as ab_store
from core.experiments import Experiment, decide
from core.validation import field_errors
from core.web import ApiError, json_body, parse_model

bp = Blueprint("assign", __name__)
ASSIGNMENTS = TypeAdapter(Assignments)


@bp.get("/assign")
def assign():
    """The visitor's variant: the stored one while the experiment runs, else `decide` with the
    attributes given (a condition sees only those); a new assignment is stored."""
    query = parse_model(AssignQuery, request.args.to_dict(), "query")
    store = ab_store()
    experiment, stored = store.experiment_and_assignment(query.experiment, query.visitor_id)
    if experiment is None:
        raise ApiError(404, f"unknown experiment {query.experiment!r}",
                       [{"field": "experiment", "message": "not found"}])
    visitor_id = query.visitor_id
    assignment = decide(experiment, query.attributes(), stored)
    variant = (store.save_assignment(experiment.key, visitor_id, assignment.variant) if assignment.new
               else assignment.variant)
    return {
        "visitor_id": visitor_id,
        "experiment": experiment.key,
        "variant": variant,
        "in_experiment": assignment.in_experiment,
        "status": experiment.status,
    }


def _problems(rows: list[AssignmentIn], experiments: dict[str, Experiment]) -> list[dict[str, Any]]:
    """Each row must name a variant of an experiment that has started."""
    problems = []
    for index, row in enumerate(rows):
        experiment = experiments.get(row.experiment)
        if experiment is None or experiment.status == "draft":
            problems.append({"index": index, "field": "experiment",
                             "message": "unknown experiment" if experiment is None else "the experiment is a draft"})
        elif row.variant not in experiment.variant_names:
            problems.append({"index": index, "field": "variant",
                             "message": f"experiment {row.experiment!r} has no variant {row.variant!r}"})
    return problems


@bp.post("/assignments")
def record_assignments():
    """Store each assignment unless the visitor has one in that experiment already (the first wins).
    The ingest key is checked before (core.roles: INGEST)."""
    try:
        rows = ASSIGNMENTS.validate_python(json_body())
    except ValidationError as exc:
        raise ApiError(400, "invalid assignments", field_errors(exc, with_index=True)) from exc
    store = ab_store()
    experiments, _ = store.list_experiments()
    problems = _problems(rows, {e.key: e for e in experiments})
    if problems:
        raise ApiError(400, f"{len(problems)} problem(s) in the assignments", problems)
    stored = store.record_assignments([(row.experiment, row.visitor_id, row.variant) for row in rows])
    return AssignmentsStored(stored=stored).model_dump()
