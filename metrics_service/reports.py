"""GET /stats, /stats/timeseries, /stats/funnel and /stats/traffic: the event reports (totals by variant
and event type, their matrix and conversion per variant; events over time; the funnel; visitors and
conversion per traffic source, campaign, device...)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from core.events import EVENT_TYPES, METRICS
from core.web import ApiError, parse_model
from metrics_service.catalogue import check_event_type
from metrics_service.schemas import (
    EventSeries,
    Funnel,
    FunnelQuery,
    Stats,
    StatsQuery,
    TimeseriesQuery,
    Traffic,
    TrafficQuery,
)
from metrics_service.series import INTERVALS_MS, event_series, funnel_steps
from metrics_service.store import EventFilter

bp = Blueprint("reports", __name__)


def event_filter(query: FunnelQuery) -> EventFilter:
    """The store's filter for the query; a 400 naming event_type when it is neither built in nor registered."""
    event_type = getattr(query, "event_type", None)
    if event_type is not None:
        check_event_type(event_type)
    return EventFilter(experiment=query.experiment, variant=query.variant, event_type=event_type,
                       since_ms=query.since_ms, until_ms=query.until_ms, segment=query.segment)


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
    query = parse_model(StatsQuery, request.args.to_dict(), "query")
    flt = event_filter(query)
    store = current_app.extensions["metrics_store"]
    with store.reading():  # one settle for the five reads
        body = summarize(
            store.matrix(flt),
            store.unique_visitors(flt)[None],
            store.unique_visitors(flt, "variant"),
            store.unique_visitors(flt, "event_type"),
            store.exposure_conversions(flt, METRICS),
        )
    filters = {name: request.args.get(name) for name in StatsQuery.model_fields}
    return Stats(**body, filters=filters).model_dump(mode="json")


@bp.get("/stats/timeseries")
def timeseries():
    query = parse_model(TimeseriesQuery, request.args.to_dict(), "query")
    rows = current_app.extensions["metrics_store"].timeseries(event_filter(query), INTERVALS_MS[query.interval])
    return EventSeries(interval=query.interval, series=event_series(rows)).model_dump(mode="json")


@bp.get("/stats/funnel")
def funnel():
    if request.args.get("event_type"):
        raise ApiError(400, "the funnel spans its own event types: it takes no event_type",
                       [{"field": "event_type", "message": f"the funnel's steps are {' → '.join(EVENT_TYPES)}"}])
    query = parse_model(FunnelQuery, request.args.to_dict(), "query")
    rows = current_app.extensions["metrics_store"].funnel(event_filter(query), EVENT_TYPES)
    return Funnel(experiment=query.experiment, steps=list(EVENT_TYPES),
                  variants=funnel_steps(rows, EVENT_TYPES)).model_dump(mode="json")


def traffic_values(rows: list[dict[str, Any]], metric: str, top: int) -> dict[str, Any]:
    """The top values by visitors (ties by value), each with its conversions and rate (pure)."""
    ranked = sorted((r for r in rows if r["visitors"]), key=lambda r: (-r["visitors"], r["value"]))
    return {"total_visitors": sum(r["visitors"] for r in ranked), "more_values": max(0, len(ranked) - top),
            "values": [{"value": r["value"], "visitors": r["visitors"], "conversions": r[metric],
                        "rate": rate(r[metric], r["visitors"])} for r in ranked[:top]]}


@bp.get("/stats/traffic")
def traffic():
    query = parse_model(TrafficQuery, request.args.to_dict(), "query")
    flt = EventFilter(experiment=query.experiment, since_ms=query.since_ms, until_ms=query.until_ms)
    rows = current_app.extensions["metrics_store"].exposure_conversions(flt, [query.metric], query.dimension,
                                                                        by_variant=False)
    return Traffic(dimension=query.dimension, experiment=query.experiment, metric=query.metric,
                   **traffic_values(rows, query.metric, query.top)).model_dump(mode="json")
