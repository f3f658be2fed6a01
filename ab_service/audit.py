"""GET /audit: every change to a flag or an experiment, newest first (the admin role: core.roles)."""
from __future__ import annotations

from flask import Blueprint, request

from ab_service.store import current_store as store
from core.web import ApiError

bp = Blueprint("audit", __name__)


@bp.get("/audit")
def audit():
    try:
        limit = int(request.args.get("limit", 200))
    except ValueError as exc:
        raise ApiError(400, "limit must be a whole number", [{"field": "limit", "message": "not a number"}]) from exc
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit must be between 1 and 1000", [{"field": "limit", "message": "out of range"}])
    return {"entries": store().audit_entries(limit)}
