"""GET/POST /flags and PATCH /flags/<key>: typed feature flags with percentage rollout."""
from __future__ import annotations

from flask import Blueprint, g

from ab_service.schemas import FlagIn, FlagPatch
from ab_service.store import current_store as store
from core.flags import default_off_value
from core.web import ApiError, json_body, listing, parse_model, require_admin

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
@require_admin
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
@require_admin
def update_flag(key: str):
    if key not in store().flag_types():
        raise _not_found(key)
    patch = parse_model(FlagPatch, json_body(), "flag")
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(400, "nothing to change", [{"field": None, "message": "send at least one field"}])
    return store().update_flags({key: changes}, g.actor)[key]
