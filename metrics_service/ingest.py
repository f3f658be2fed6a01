"""POST /events: validate a single event or a batch, store it atomically, count duplicates."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, g

from core.events import EventValidationError, parse_events, to_row
from core.web import hit_limit, json_body
from metrics_service.catalogue import unknown_event_types
from metrics_service.schemas import Accepted

bp = Blueprint("ingest", __name__)


@bp.post("/events")
def post_events():
    hit_limit("ingest", g.actor)  # the key's sender (checked before: core.roles INGEST); 429 over its rate
    payload = json_body()
    try:
        parsed = parse_events(payload)
    except EventValidationError as exc:  # every problem at once, unregistered types too
        flagged = {e["index"] for e in exc.errors if e["field"] == "event_type"}
        raise EventValidationError(exc.errors + [p for p in _unregistered(payload) if p["index"] not in flagged]) \
            from exc
    problems = _unregistered(payload)
    if problems:
        raise EventValidationError(problems)
    received_at = datetime.now(UTC)
    rows = [to_row(event, received_at) for event in parsed]
    contexts = [event.context.values() if event.context else None for event in parsed]
    stored = current_app.extensions["metrics_store"].insert_events(rows, contexts)
    answer = Accepted(accepted=stored, duplicates=len(rows) - stored).model_dump_json()  # not through Flask's JSON
    return current_app.response_class(answer, status=202, mimetype="application/json")


def _unregistered(payload: Any) -> list[dict[str, Any]]:
    """One problem per event whose type is neither built in nor registered."""
    items = payload if isinstance(payload, list) else [payload]
    types = {i: item["event_type"] for i, item in enumerate(items)
             if isinstance(item, dict) and isinstance(item.get("event_type"), str) and item["event_type"]}
    unknown = unknown_event_types(types.values())
    return [{"index": i, "field": "event_type", "message": unknown[t]} for i, t in types.items() if t in unknown]
