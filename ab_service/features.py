"""GET /api/features/<client key>: the flags and running experiments as GrowthBook's features payload,
so any GrowthBook SDK decides what the landing page decides (public, like GrowthBook's own endpoint)."""
from __future__ import annotations

import hmac
from datetime import UTC, datetime

from flask import Blueprint

from ab_service.store import current_store as store
from core.evaluation import features_payload
from core.web import ApiError, settings

bp = Blueprint("features", __name__)


@bp.get("/api/features/<client_key>")
def features(client_key: str):
    expected = settings().growthbook_client_key
    if not expected or not hmac.compare_digest(client_key.encode(), expected.encode()):
        raise ApiError(404, "unknown client key", [{"field": "client_key", "message": "not found"}])
    updated = store().last_change()  # read first: the payload is at least as new as its date
    (flags, _), (experiments, _) = store().list_flags(), store().list_experiments()  # unreadable rows left out
    payload = features_payload(flags, experiments)
    date = datetime.fromtimestamp(updated / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"status": 200, "features": payload, "dateUpdated": date}
