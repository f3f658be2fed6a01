"""ab_service's OpenAPI description, served at /openapi.json and kept true by tests."""
from __future__ import annotations

from typing import Any

from ab_service.schemas import (
    AssignmentIn,
    AssignmentsStored,
    AssignQuery,
    ExperimentIn,
    ExperimentPatch,
    ExperimentRecord,
    FlagIn,
    FlagPatch,
    FlagRecord,
    FlagSchedule,
    FlagScheduleIn,
    Webhook,
    WebhookCreated,
    WebhookIn,
)
from core.events import MAX_BATCH, MAX_VISITOR_ID
from core.experiments import STATUSES
from core.openapi import (
    answer_schemas,
    build_spec,
    health_path,
    model_schemas,
    operation,
    path_param,
    query,
    query_params,
    ref,
)
from core.roles import Role

ASSIGNMENT = {
    "type": "object",
    "required": ["visitor_id", "experiment", "variant", "in_experiment", "status"],
    "properties": {
        "visitor_id": {"type": "string"},
        "experiment": {"type": "string"},
        "variant": {"type": "string"},
        "in_experiment": {"type": "boolean"},
        "status": {"type": "string", "enum": list(STATUSES)},
    },
}
UNREADABLE = {"type": "array", "description": "stored records that do not fit the schema, left out of the list",
              "items": {"type": "object", "required": ["key", "errors"],
                        "properties": {"key": {"type": "string"}, "errors": {"type": "array"}}}}


def listing(name: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [name],
            "properties": {name: {"type": "array", "items": ref(item)}, "unreadable": UNREADABLE}}


FEATURES = {
    "type": "object",
    "required": ["status", "features", "dateUpdated"],
    "properties": {
        "status": {"type": "integer", "const": 200},
        "features": {"type": "object", "description": "one feature per flag", "additionalProperties": {
            "type": "object", "required": ["defaultValue", "rules"],
            "properties": {"defaultValue": {}, "rules": {"type": "array", "items": {"type": "object"}}}}},
        "dateUpdated": {"type": "string", "format": "date-time", "description": "the newest change of a flag "
                                                                                "or an experiment"},
    },
}
DELETED = {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}
WHOAMI = {"type": "object", "required": ["name", "role"],
          "properties": {"name": {"type": "string"}, "role": {"type": "string", "enum": [r.label for r in Role]}}}
CONFIG = {"type": "object", "additionalProperties": {"type": ["boolean", "string", "number"]}}
AUDIT = {
    "type": "object",
    "required": ["entries"],
    "properties": {"entries": {"type": "array", "items": {
        "type": "object",
        "required": ["id", "at", "actor", "entity", "key", "action", "new"],
        "properties": {"id": {"type": "integer"}, "at": {"type": "integer"}, "actor": {"type": "string"},
                       "entity": {"type": "string", "enum": ["flag", "experiment"]}, "key": {"type": "string"},
                       "action": {"type": "string", "enum": ["create", "update", "refused"]}, "old": {}, "new": {}},
    }}},
}


def spec() -> dict[str, Any]:
    key = [path_param("key")]
    paths = {
        "/health": health_path(),
        "/assign": {"get": operation(
            "The visitor's variant: sticky once stored, else the experiment's namespace and condition (over "
            "the attributes given) and the GrowthBook v2 hash; 409 when the experiment's stored row does not "
            "fit the schema", (200, ref("Assignment")), (400, 404, 409), params=query_params(AssignQuery),
        )},
        "/assignments": {"post": operation(
            f"Remember up to {MAX_BATCH} assignments the landing page made (the first one of a visitor in an "
            "experiment wins)", (200, ref("AssignmentsStored")), (400,),
            body={"type": "array", "items": ref("AssignmentIn"), "minItems": 1, "maxItems": MAX_BATCH}
        )},
        "/api/features/{client_key}": {"get": operation(
            "GrowthBook's features payload: each flag a feature, each running experiment an experiment rule "
            "on the flags it overrides (public; the client key is GROWTHBOOK_CLIENT_KEY)",
            (200, ref("Features")), (404,), params=[path_param("client_key")],
        )},
        "/config": {
            "get": operation("Flag values as one flat object; with visitor_id, resolved for that visitor",
                             (200, ref("Config")),
                             params=[query("visitor_id", {"type": "string", "maxLength": MAX_VISITOR_ID})]),
            "post": operation("Change flag values", (200, ref("Config")), (400,), body=ref("Config")),
        },
        "/flags": {
            "get": operation("Flag definitions", (200, listing("flags", "FlagRecord"))),
            "post": operation("Create a flag", (201, ref("FlagRecord")), (400, 409), body=ref("FlagIn")),
        },
        "/flags/{key}": {
            "get": operation("One flag; 409 when its stored row does not fit the schema", (200, ref("FlagRecord")),
                             (404, 409), params=key),
            "patch": operation("Change a flag's value, off_value, rollout, description or allowed values",
                               (200, ref("FlagRecord")), (400, 404), params=key, body=ref("FlagPatch")),
        },
        "/experiments": {
            "get": operation("All experiments", (200, listing("experiments", "ExperimentRecord"))),
            "post": operation("Create an experiment; 409 when its key is taken, or when it starts running "
                              "while a running experiment that can share its visitors overrides one of its flags",
                              (201, ref("ExperimentRecord")), (400, 409), body=ref("ExperimentIn")),
        },
        "/experiments/{key}": {
            "get": operation("One experiment; 409 when its stored row does not fit the schema",
                             (200, ref("ExperimentRecord")), (404, 409), params=key),
            "patch": operation("Change an experiment; status moves draft→running→stopped→running; 409 as "
                               "for POST when it starts running or overrides more flags while running",
                               (200, ref("ExperimentRecord")), (400, 404, 409), params=key,
                               body=ref("ExperimentPatch")),
        },
        "/flags/{key}/schedule": {
            "get": operation("The flag's pending scheduled changes, soonest first",
                             (200, {"type": "object", "required": ["schedules"],
                                    "properties": {"schedules": {"type": "array", "items": ref("FlagSchedule")}}}),
                             (404,), params=key),
            "post": operation("Schedule a change of the flag's value, off_value, rollout or description at a later "
                              "time; the scheduler applies it within a minute of `at`, as `scheduler`",
                              (201, ref("FlagSchedule")), (400, 404), params=key, body=ref("FlagScheduleIn")),
        },
        "/flags/{key}/schedule/{schedule_id}": {"delete": operation(
            "Cancel a pending scheduled change", (200, DELETED), (404,),
            params=[path_param("key"), path_param("schedule_id")])},
        "/webhooks": {
            "get": operation("Every webhook, without its secret, with its deliveries done and pending",
                             (200, {"type": "object", "required": ["webhooks"],
                                    "properties": {"webhooks": {"type": "array", "items": ref("Webhook")}}})),
            "post": operation("Add a webhook: its URL, the events it receives and the secret its payloads "
                              "are signed with, answered this once", (201, ref("WebhookCreated")), (400,),
                              body=ref("WebhookIn")),
        },
        "/webhooks/{webhook_id}": {"delete": operation(
            "Remove a webhook and its pending deliveries", (200, DELETED), (404,),
            params=[path_param("webhook_id")])},
        "/whoami": {"get": operation("The name and role of the token sent", (200, ref("Whoami")))},
        "/audit": {"get": operation("Every change to flags and experiments, newest first", (200, ref("Audit")),
                                    (400,), params=[query("limit", {"type": "integer", "minimum": 1,
                                                                    "maximum": 1000})])},
    }
    schemas = {"Assignment": ASSIGNMENT, "Whoami": WHOAMI, "Config": CONFIG, "Audit": AUDIT, "Features": FEATURES,
               **model_schemas(ExperimentRecord, ExperimentIn, ExperimentPatch, FlagRecord, FlagIn, FlagPatch,
                               AssignmentIn, FlagScheduleIn, WebhookIn),
               **answer_schemas(AssignmentsStored, FlagSchedule, Webhook, WebhookCreated)}
    return build_spec(
        "ab_service", "Landing Lab ab_service", "Sticky variant assignment, experiments and feature flags.",
        paths, schemas)
