"""metrics_service's OpenAPI description, served at /openapi.json and kept true by tests: built from
the models that parse the requests and shape the answers."""
from __future__ import annotations

from typing import Any

from core.events import MAX_BATCH, Event
from core.openapi import (
    answer_schemas,
    build_spec,
    health_path,
    health_schema,
    model_schemas,
    operation,
    path_param,
    query_params,
    ref,
)
from metrics_service.encoding import MEDIA_TYPES
from metrics_service.folding import FOLD_FAILURES_SHOWN
from metrics_service.schemas import (
    Accepted,
    CumulativeQuery,
    CumulativeSeries,
    EventExportQuery,
    EventSeries,
    EventTypeIn,
    EventTypeList,
    EventTypeRecord,
    ExperimentExportQuery,
    FoldFailureList,
    Folding,
    Funnel,
    FunnelQuery,
    MetricIn,
    MetricList,
    MetricPatch,
    MetricRecord,
    Plan,
    PlanIn,
    PlanQuery,
    Results,
    ResultsQuery,
    SegmentResults,
    Stats,
    StatsQuery,
    Summary,
    SummaryQuery,
    TimeseriesQuery,
    Traffic,
    TrafficQuery,
)


def export_operation(summary: str, formats: tuple[str, ...], params: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed export: one media type per format (chosen by the `format` parameter); the analyst role."""
    op = operation(summary, (200, {"type": "string"}), (400,), params=params)
    op["responses"]["200"]["content"] = {MEDIA_TYPES[fmt].split(";")[0]: {"schema": {"type": "string"}}
                                         for fmt in formats}
    return op


def spec() -> dict[str, Any]:
    key = [path_param("key")]
    paths = {
        "/health": health_path(),
        "/events": {"post": operation(
            f"Store one event or a batch of up to {MAX_BATCH}; repeated event_ids count as duplicates. Needs the "
            "ingest key (or an admin token); rate-limited per key (RATE_LIMIT_INGEST)",
            (202, ref("Accepted")), (400, 429),
            body={"oneOf": [ref("Event"),
                            {"type": "array", "items": ref("Event"), "minItems": 1, "maxItems": MAX_BATCH}]}
        )},
        "/stats": {"get": operation(
            "Totals by variant and event type, their matrix, conversion per variant; with segment=, the visitors "
            "of that segment and their events", (200, ref("Stats")), (400,), params=query_params(StatsQuery))},
        "/stats/timeseries": {"get": operation(
            "Events and unique visitors per time bucket and variant; with segment=, the visitors of that segment "
            "and their events", (200, ref("EventSeries")), (400,), params=query_params(TimeseriesQuery))},
        "/stats/funnel": {"get": operation("Per variant: page_view → cta_click → form_submit",
                                           (200, ref("Funnel")), (400,), params=query_params(FunnelQuery))},
        "/stats/traffic": {"get": operation(
            "Visitors, conversions and conversion rate per value of a context dimension (source, campaign, "
            "device...), most visitors first", (200, ref("Traffic")), (400,), params=query_params(TrafficQuery))},
        "/experiments/{key}/results": {"get": operation(
            "The experiment's readout: intervals, uplift, p-values, chance to beat control, SRM, verdict; with "
            "dimension=, the readout per segment (SegmentResults)",
            (200, {"oneOf": [ref("Results"), ref("SegmentResults")]}), (400,),
            params=[*key, *query_params(ResultsQuery)],
        )},
        "/experiments/{key}/summary": {"get": operation(
            "Every metric of the experiment (primary, secondary, guardrails, as its definition names them) and "
            "whether to ship: the primary wins and no guardrail is significantly worse",
            (200, ref("Summary")), (400,), params=[*key, *query_params(SummaryQuery)],
        )},
        "/experiments/{key}/plan": {
            "get": operation("Visitors needed per variant for a minimum detectable relative effect, and the "
                             "expected duration at the last 14 days' exposed visitors",
                             (200, ref("Plan")), (400,), params=[*key, *query_params(PlanQuery)]),
            "post": operation("Save the plan of a metric: its readouts become group-sequential (admin); 409 once "
                              "its readouts have taken looks",
                              (201, ref("Plan")), (400, 401, 409), params=key, body=ref("PlanIn")),
        },
        "/event-types": {
            "get": operation("Built-in and registered event types", (200, ref("EventTypeList")), ()),
            "post": operation("Register an event type (admin); 409 when it exists or is built in",
                              (201, ref("EventTypeRecord")), (400, 401, 409), body=ref("EventTypeIn")),
        },
        "/metrics": {
            "get": operation("Built-in and defined metrics", (200, ref("MetricList")), ()),
            "post": operation("Define a metric (admin); 409 when the key exists or is built in",
                              (201, ref("MetricRecord")), (400, 401, 409), body=ref("MetricIn")),
        },
        "/metrics/{key}": {
            "get": operation("One metric", (200, ref("MetricRecord")), (404,), params=key),
            "patch": operation("Change a defined metric's name, direction or cap (admin; null removes the cap)",
                               (200, ref("MetricRecord")), (400, 401, 404), params=key, body=ref("MetricPatch")),
        },
        "/experiments/{key}/timeseries": {"get": operation(
            "Cumulative exposure and conversion per time bucket and variant",
            (200, ref("CumulativeSeries")), (400,), params=[*key, *query_params(CumulativeQuery)],
        )},
        "/events/export": {"get": export_operation(
            "The raw events, every column, in id order, streamed (csv, ndjson or parquet); resume with "
            "after=<the last id received>", ("csv", "ndjson", "parquet"), query_params(EventExportQuery))},
        "/experiments/{key}/export": {"get": export_operation(
            "One row per visitor and variant as the readouts count them: first counted event, then per event "
            "type the number of events and the first one's time, streamed (csv or ndjson); resume with "
            "after=<variant>:<visitor_id> of the last row", ("csv", "ndjson"),
            [*key, *query_params(ExperimentExportQuery)])},
        "/events/fold-failures": {"get": operation(
            f"The latest {FOLD_FAILURES_SHOWN} events whose fold into the aggregates failed on its own (admin): left "
            "out of them, kept in the events, counted by the next rebuild", (200, ref("FoldFailureList")))},
    }
    schemas = {"Health": health_schema(folding=ref("Folding")),
               **answer_schemas(Folding, FoldFailureList, Accepted, Stats, EventSeries, Funnel, Results,
                                CumulativeSeries, SegmentResults, Traffic, Summary, Plan, EventTypeList,
                                EventTypeRecord, MetricList, MetricRecord),
               **model_schemas(Event, EventTypeIn, MetricIn, MetricPatch, PlanIn)}
    return build_spec(
        "metrics_service", "Landing Lab metrics_service", "Event ingest, aggregate stats and experiment results.",
        paths, schemas)
