"""/event-types and /metrics: the event types an admin registered and the metrics defined on them."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, current_app

from core.events import EVENT_TYPES, EXPOSURE, METRIC_NAMES, METRICS
from core.web import ApiError, json_body, parse_model
from metrics_service.catalogue_store import CatalogueStore
from metrics_service.schemas import (
    EventTypeIn,
    EventTypeList,
    EventTypeRecord,
    MetricIn,
    MetricList,
    MetricPatch,
    MetricRecord,
)

bp = Blueprint("catalogue", __name__)

BUILTIN_METRICS = [MetricRecord(key=m, name=METRIC_NAMES[m], event_type=m, kind="conversion", direction="increase",
                                cap=None, builtin=True) for m in METRICS]


def catalogue() -> CatalogueStore:
    return current_app.extensions["catalogue_store"]


def _conflict(what: str, key: str, reason: str = "already exists") -> ApiError:
    return ApiError(409, f"{what} {key!r} {reason}", [{"field": "key", "message": reason}], code="conflict")


def find_metric(key: str) -> MetricRecord | None:
    """A built-in or defined metric by its key."""
    for metric in BUILTIN_METRICS:
        if metric.key == key:
            return metric
    stored = catalogue().metric(key)
    return MetricRecord(**stored, builtin=False) if stored else None


def unknown_metric(key: str, field: str = "metric") -> ApiError:
    return ApiError(400, f"unknown metric {key!r}: define it with POST /metrics",
                    [{"field": field, "message": f"unknown metric {key!r}"}])


@bp.get("/event-types")
def list_event_types():
    builtin = [EventTypeRecord(key=t, description="built in", builtin=True) for t in EVENT_TYPES]
    registered = [EventTypeRecord(**row, builtin=False) for row in catalogue().event_types()]
    return EventTypeList(event_types=builtin + registered).model_dump(mode="json")


@bp.post("/event-types")
def create_event_type():
    body = parse_model(EventTypeIn, json_body(), "event type")
    if body.key in EVENT_TYPES:
        raise _conflict("event type", body.key, "is built in")
    if not catalogue().add_event_type(body.key, body.description):
        raise _conflict("event type", body.key)
    return EventTypeRecord(key=body.key, description=body.description, builtin=False).model_dump(mode="json"), 201


@bp.get("/metrics")
def list_metrics():
    stored = [MetricRecord(**row, builtin=False) for row in catalogue().metrics()]
    return MetricList(metrics=BUILTIN_METRICS + stored).model_dump(mode="json")


@bp.get("/metrics/<key>")
def get_metric(key: str):
    metric = find_metric(key)
    if metric is None:
        raise ApiError(404, f"no metric {key!r}", code="not_found")
    return metric.model_dump(mode="json")


def _invalid_event_type(problem: str) -> ApiError:
    return ApiError(400, problem, [{"field": "event_type", "message": problem}])


def unknown_event_types(keys: Iterable[str]) -> dict[str, str]:
    """Of these keys, those that name no event type (neither built in nor registered), each with why."""
    custom = set(keys) - set(EVENT_TYPES)
    known = catalogue().registered(sorted(custom)) if custom else set()
    return {key: f"unknown event type {key!r}: register it with POST /event-types" for key in custom - known}


def check_event_type(event_type: str) -> None:
    """A 400 naming the field event_type unless the type is built in or registered (what ingest accepts)."""
    problem = unknown_event_types([event_type]).get(event_type)
    if problem:
        raise _invalid_event_type(problem)


@bp.post("/metrics")
def create_metric():
    body = parse_model(MetricIn, json_body(), "metric")
    if body.key in METRICS:
        raise _conflict("metric", body.key, "is built in")
    if body.event_type == EXPOSURE:
        raise _invalid_event_type(f"{EXPOSURE} is the exposure itself: every exposed visitor has it")
    check_event_type(body.event_type)
    values: dict[str, Any] = body.model_dump()
    if not catalogue().save_metric(values, create=True):
        raise _conflict("metric", body.key)
    return MetricRecord(**values, builtin=False).model_dump(mode="json"), 201


@bp.patch("/metrics/<key>")
def update_metric(key: str):
    patch = parse_model(MetricPatch, json_body(), "metric")
    current = catalogue().metric(key)
    if current is None:
        raise ApiError(404, f"no metric {key!r}" + (" (built-in metrics are fixed)" if key in METRICS else ""),
                       code="not_found")
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(400, "nothing to change", [{"field": None, "message": "send at least one field"}])
    if changes.get("cap") is not None and current["kind"] != "value":
        message = "only value metrics have a cap"
        raise ApiError(400, message, [{"field": "cap", "message": message}])
    values = {**current, **changes}
    if not catalogue().save_metric(values, create=False):
        raise ApiError(404, f"no metric {key!r}", code="not_found")
    return MetricRecord(**values, builtin=False).model_dump(mode="json")
