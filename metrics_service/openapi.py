"""metrics_service's OpenAPI description, served at /openapi.json and kept true by tests."""
from __future__ import annotations

from typing import Any

from core.events import EVENT_TYPES, METRICS, Event
from core.openapi import build_spec, health_path, model_schemas, operation, path_param, query, ref

TIME = {"type": "string", "format": "date-time"}
EVENT_TYPE = {"type": "string", "enum": list(EVENT_TYPES)}
FILTERS = [
    query("experiment", {"type": "string", "maxLength": 64}),
    query("variant", {"type": "string", "maxLength": 64}),
    query("event_type", EVENT_TYPE),
    query("since", TIME, description="ISO 8601, inclusive"),
    query("until", TIME, description="ISO 8601, exclusive"),
]
INTERVAL = query("interval", {"type": "string", "enum": ["hour", "day"]})
METRIC = query("metric", {"type": "string", "enum": list(METRICS)})
COUNTS = {"type": "object", "required": ["events", "visitors"],
          "properties": {"events": {"type": "integer"}, "visitors": {"type": "integer"}}}
RATE = {"type": ["number", "null"]}
STATS = {
    "type": "object",
    "required": ["total_events", "unique_visitors", "by_variant", "by_event_type", "matrix", "conversion"],
    "properties": {
        "total_events": {"type": "integer"},
        "unique_visitors": {"type": "integer"},
        "by_variant": {"type": "object", "additionalProperties": COUNTS},
        "by_event_type": {"type": "object", "additionalProperties": COUNTS},
        "matrix": {"type": "array", "items": {"type": "object", "required": ["variant", "event_type", "events",
                                                                            "visitors"]}},
        "conversion": {"type": "object", "additionalProperties": {"type": "object", "required": ["visitors"]}},
        "filters": {"type": "object"},
    },
}
NUMBER_OR_NULL = {"type": ["number", "null"]}
VARIANT_RESULT = {
    "type": "object",
    "required": ["variant", "visitors", "conversions", "rate", "ci_low", "ci_high", "uplift", "uplift_ci_low",
                 "uplift_ci_high", "p_value", "p_value_adjusted", "p_value_sequential", "chance_to_beat_control"],
    "properties": {"variant": {"type": "string"}, "visitors": {"type": "integer"}, "conversions": {"type": "integer"},
                   **{name: NUMBER_OR_NULL for name in ("rate", "ci_low", "ci_high", "uplift", "uplift_ci_low",
                                                         "uplift_ci_high", "p_value", "p_value_adjusted",
                                                         "p_value_sequential", "chance_to_beat_control")}},
}
RESULTS = {
    "type": "object",
    "required": ["experiment", "metric", "control", "srm", "variants", "verdict"],
    "properties": {
        "experiment": {"type": "string"},
        "metric": {"type": "string"},
        "control": {"type": ["string", "null"]},
        "srm": {"type": "object", "required": ["p_value", "mismatch", "expected_weights"],
                "properties": {"p_value": NUMBER_OR_NULL, "mismatch": {"type": "boolean"},
                               "expected_weights": {"type": "object"}}},
        "variants": {"type": "array", "items": ref("VariantResult")},
        "verdict": {"type": "string"},
    },
}
SERIES = {"type": "object", "required": ["interval", "series"],
          "properties": {"interval": {"type": "string"}, "series": {"type": "array", "items": {"type": "object"}}}}
FUNNEL = {"type": "object", "required": ["steps", "variants"],
          "properties": {"steps": {"type": "array"}, "variants": {"type": "array"}}}
ACCEPTED = {"type": "object", "required": ["accepted", "duplicates"],
            "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}}}


def spec() -> dict[str, Any]:
    key = [path_param("key")]
    since_until = FILTERS[3:]
    paths = {
        "/health": health_path(),
        "/events": {"post": operation(
            "Store one event or a batch of up to 1000; repeated event_ids count as duplicates",
            (202, ref("Accepted")), (400,),
            body={"oneOf": [ref("Event"), {"type": "array", "items": ref("Event"), "minItems": 1, "maxItems": 1000}]},
        )},
        "/stats": {"get": operation("Totals by variant and event type, their matrix, conversion per variant",
                                    (200, ref("Stats")), (400,), params=FILTERS)},
        "/stats/timeseries": {"get": operation("Events and unique visitors per time bucket and variant",
                                               (200, ref("Series")), (400,), params=[*FILTERS, INTERVAL])},
        "/stats/funnel": {"get": operation("Per variant: page_view → cta_click → form_submit",
                                           (200, ref("Funnel")), (400,), params=FILTERS)},
        "/experiments/{key}/results": {"get": operation(
            "The experiment's readout: intervals, uplift, p-values, chance to beat control, SRM, verdict",
            (200, ref("Results")), (400,),
            params=[*key, METRIC, query("control", {"type": "string", "maxLength": 64}),
                    query("weights", {"type": "string", "description": "A:0.5,B:0.5"}), *since_until],
        )},
        "/experiments/{key}/timeseries": {"get": operation(
            "Cumulative exposure and conversion per time bucket and variant",
            (200, ref("Series")), (400,), params=[*key, METRIC, INTERVAL, *since_until],
        )},
    }
    schemas = {"Stats": STATS, "Results": RESULTS, "VariantResult": VARIANT_RESULT, "Series": SERIES,
               "Funnel": FUNNEL, "Accepted": ACCEPTED, **model_schemas(Event)}
    return build_spec("Landing Lab metrics_service", "Event ingest, aggregate stats and experiment results.",
                      paths, schemas)
