"""GET /stats, /stats/timeseries and /stats/funnel: the event reports (totals by variant and event type,
their matrix and conversion per variant; events over time; the funnel)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, request

from core.events import EVENT_TYPES, METRICS, to_millis
from core.web import ApiError
from metrics_service.series import INTERVALS_MS, event_series, funnel_steps
from metrics_service.store import EventFilter

bp = Blueprint("reports", __name__)


def parse_time(name: str, value: str | None) -> int | None:
    """ISO 8601 (a date, or a date-time; naive means UTC) -> epoch milliseconds."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time",
                       [{"field": name, "message": "not an ISO 8601 date-time"}]) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return to_millis(when)


def parse_interval() -> str:
    interval = request.args.get("interval", "hour")
    if interval not in INTERVALS_MS:
        raise ApiError(400, "interval must be hour or day", [{"field": "interval", "message": "unknown interval"}])
    return interval


def filter_from_args(args) -> EventFilter:
    event_type = args.get("event_type") or None
    if event_type and event_type not in EVENT_TYPES:
        raise ApiError(400, f"event_type must be one of {', '.join(EVENT_TYPES)}",
                       [{"field": "event_type", "message": "unknown event type"}])
    flt = EventFilter(
        experiment=args.get("experiment") or None,
        variant=args.get("variant") or None,
        event_type=event_type,
        since_ms=parse_time("since", args.get("since")),
        until_ms=parse_time("until", args.get("until")),
    )
    if flt.since_ms is not None and flt.until_ms is not None and flt.since_ms > flt.until_ms:
        raise ApiError(400, "since must not be after until", [{"field": "since", "message": "after until"}])
    return flt


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize(
    matrix: list[dict[str, Any]],
    visitors_total: int,
    visitors_by_variant: dict[str, int],
    visitors_by_type: dict[str, int],
    exposure: list[dict[str, Any]],
) -> dict[str, Any]:
    """Shape raw aggregates into the /stats response (pure)."""
    by_variant: dict[str, dict[str, int]] = {}
    by_event_type: dict[str, dict[str, int]] = {}
    for cell in matrix:
        by_variant.setdefault(cell["variant"], {"events": 0, "visitors": 0})["events"] += cell["events"]
        by_event_type.setdefault(cell["event_type"], {"events": 0, "visitors": 0})["events"] += cell["events"]
    for variant, totals in by_variant.items():
        totals["visitors"] = visitors_by_variant.get(variant, 0)
    for event_type, totals in by_event_type.items():
        totals["visitors"] = visitors_by_type.get(event_type, 0)
    conversion = {}
    for row in exposure:
        viewers = row["visitors"]
        conversion[row["variant"]] = {
            "visitors": viewers,
            **{
                metric: {"visitors": row[metric], "rate": rate(row[metric], viewers)}
                for metric in METRICS
            },
        }
    return {
        "total_events": sum(cell["events"] for cell in matrix),
        "unique_visitors": visitors_total,
        "by_variant": by_variant,
        "by_event_type": by_event_type,
        "matrix": matrix,
        "conversion": conversion,
    }


@bp.get("/stats")
def stats():
    flt = filter_from_args(request.args)
    store = current_app.extensions["metrics_store"]
    body = summarize(
        store.matrix(flt),
        store.unique_visitors(flt)[None],
        store.unique_visitors(flt, "variant"),
        store.unique_visitors(flt, "event_type"),
        store.exposure_conversions(flt, METRICS),
    )
    body["filters"] = {k: request.args.get(k) for k in ("experiment", "variant", "event_type", "since", "until")}
    return body


@bp.get("/stats/timeseries")
def timeseries():
    flt = filter_from_args(request.args)
    interval = parse_interval()
    rows = current_app.extensions["metrics_store"].timeseries(flt, INTERVALS_MS[interval])
    return {"interval": interval, "series": event_series(rows)}


@bp.get("/stats/funnel")
def funnel():
    flt = filter_from_args(request.args)
    rows = current_app.extensions["metrics_store"].funnel(flt, EVENT_TYPES)
    return {"experiment": flt.experiment, "steps": list(EVENT_TYPES), "variants": funnel_steps(rows, EVENT_TYPES)}
