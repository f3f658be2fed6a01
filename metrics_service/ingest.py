"""POST /events: validate a single event or a batch, store it atomically, count duplicates."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app

from core.events import EventValidationError, parse_events, to_row
from core.web import ApiError, json_body

bp = Blueprint("ingest", __name__)


@bp.post("/events")
def post_events():
    payload = json_body()
    try:
        parsed = parse_events(payload)
    except EventValidationError as exc:
        raise ApiError(400, f"{len(exc.errors)} problem(s) in the events", exc.errors, code="invalid_events") from exc
    received_at = datetime.now(UTC)
    rows = [to_row(event, received_at) for event in parsed]
    stored = current_app.extensions["metrics_store"].insert_events(rows)
    return {"accepted": stored, "duplicates": len(rows) - stored}, 202
