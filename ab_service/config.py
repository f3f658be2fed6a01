"""GET/POST /config: the toggle values as one flat JSON object; writes need the editor role."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request

from ab_service.store import current_store as store
from core.flags import resolve_all, value_problem
from core.web import ApiError, json_body

bp = Blueprint("config", __name__)


def validate_changes(changes: Any, types: dict[str, str]) -> list[dict[str, Any]]:
    """One problem per bad field: unknown key or a value of the wrong type."""
    if not isinstance(changes, dict) or not changes:
        return [{"field": None, "message": "body must be a non-empty JSON object of toggle values"}]
    problems = []
    for key, value in changes.items():
        kind = types.get(key)
        problem = "unknown toggle" if kind is None else value_problem(kind, value)
        if problem:
            problems.append({"field": key, "message": problem})
    return problems


@bp.get("/config")
def get_config():
    """Flag values; with ?visitor_id= they are resolved for that visitor's rollout buckets. A flag whose
    stored row cannot be read is left out and named in the X-Unreadable-Flags header."""
    flags, unreadable = store().list_flags()
    visitor_id = request.args.get("visitor_id")
    if visitor_id is None:
        body = {flag["key"]: flag["value"] for flag in flags}
    else:
        body = resolve_all(flags, visitor_id)
    headers = {"X-Unreadable-Flags": ", ".join(exc.key for exc in unreadable)} if unreadable else {}
    return body, 200, headers


@bp.post("/config")
def set_config():
    changes = json_body()
    problems = validate_changes(changes, store().flag_types())
    if problems:
        fields = ", ".join(str(p["field"]) for p in problems if p["field"]) or "body"
        raise ApiError(400, f"invalid config: {fields}", problems)
    store().update_flags({key: {"value": value} for key, value in changes.items()}, g.actor)
    return get_config()
