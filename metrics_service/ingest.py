"""POST /events: validate a single event or a batch, store it atomically, count duplicates."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app

from core.events import parse_events, to_row
from core.web import hit_limit, ingest_sender, json_body
from metrics_service.schemas import Accepted

bp = Blueprint("ingest", __name__)


@bp.post("/events")
def post_events():
    hit_limit("ingest", ingest_sender())  # 401 without a valid key, 429 over the key's rate
    parsed = parse_events(json_body())
    received_at = datetime.now(UTC)
    rows = [to_row(event, received_at) for event in parsed]
    contexts = [event.context.values() if event.context else None for event in parsed]
    stored = current_app.extensions["metrics_store"].insert_events(rows, contexts)
    return Accepted(accepted=stored, duplicates=len(rows) - stored).model_dump(), 202
