"""GET/POST /config: feature toggles as one flat JSON object; writes need the admin token."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from ab_service.store import AbStore
from core.web import ApiError, json_body, require_admin

bp = Blueprint("config", __name__)

MAX_STRING = 200


def validate_changes(changes: Any, types: dict[str, str]) -> list[dict[str, str]]:
    """One problem per bad field: unknown key or a value of the wrong type."""
    if not isinstance(changes, dict) or not changes:
        return [{"field": None, "message": "body must be a non-empty JSON object of toggle values"}]
    problems = []
    for key, value in changes.items():
        kind = types.get(key)
        if kind is None:
            problems.append({"field": key, "message": "unknown toggle"})
        elif kind == "boolean" and not isinstance(value, bool):
            problems.append({"field": key, "message": "must be true or false"})
        elif kind == "string" and not isinstance(value, str):
            problems.append({"field": key, "message": "must be a string"})
        elif kind == "string" and not value.strip():
            problems.append({"field": key, "message": "must not be empty"})
        elif kind == "string" and len(value) > MAX_STRING:
            problems.append({"field": key, "message": f"must be at most {MAX_STRING} characters"})
    return problems


def _store() -> AbStore:
    return current_app.extensions["ab_store"]


@bp.get("/config")
def get_config():
    return _store().get_flags()


@bp.post("/config")
@require_admin
def set_config():
    changes = json_body()
    store = _store()
    problems = validate_changes(changes, store.get_flag_types())
    if problems:
        fields = ", ".join(str(p["field"]) for p in problems if p["field"]) or "body"
        raise ApiError(400, f"invalid config: {fields}", problems)
    return store.set_flags(changes)
