"""Building and serving each service's OpenAPI 3.1 description (GET /openapi.json)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint
from pydantic import BaseModel

from core.keys import key_schema
from core.roles import INGEST, PERMISSIONS, PUBLIC, Access, Role, lowest_role

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": ["integer", "null"]},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
HEALTH_SCHEMA = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
ERROR_TEXT = {
    400: "Invalid input; every problem is listed",
    401: "Missing or wrong credentials (a named token, or the ingest key)",
    403: "The token's role is too low; the answer names the role needed (required_role)",
    404: "Not found",
    409: "Conflict: the key already exists, or the stored record does not fit its schema",
    413: "Request body too large",
    429: "Too many requests; see Retry-After",
}


REF_TEMPLATE = "#/components/schemas/{model}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def operation(
    summary: str,
    ok: tuple[int, dict[str, Any]] | tuple[int, dict[str, Any], str],
    errors: tuple[int, ...] = (),
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One operation: its success response, the error statuses it can answer, parameters and body (the
    credentials it needs come from the permission matrix: see build_spec)."""
    status, schema, *media = ok
    content = {media[0]: {"schema": schema}} if media else json_content(schema)
    responses: dict[str, Any] = {str(status): {"description": "Success", "content": content}}
    # Any request can be refused as invalid (NUL characters, malformed parameters): 400 is always possible.
    statuses = set(errors) | {400} | ({413} if body else set())
    for code in sorted(statuses):
        responses[str(code)] = error_response(code)
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": json_content(body)}
    return op


def error_response(code: int) -> dict[str, Any]:
    return {"description": ERROR_TEXT.get(code, "Error"), "content": json_content(ref("Error"))}


def query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": key_schema()}


def health_schema(**properties: dict[str, Any]) -> dict[str, Any]:
    """The Health answer of a service that reports more of its state (core.web.health_blueprint's
    `report`): the shared answer and each of `properties`, all present."""
    return {"allOf": [HEALTH_SCHEMA, {"type": "object", "required": list(properties), "properties": properties}]}


def health_path() -> dict[str, Any]:
    return {"get": operation("Health: 200 once the database answers", (200, ref("Health")), (503,))}


def _schemas(models: tuple[type[BaseModel], ...], mode: str) -> dict[str, Any]:
    """JSON Schemas of pydantic models, with nested definitions lifted into components."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def model_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The schemas of request bodies."""
    return _schemas(models, "validation")


def answer_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The schemas of answers: an answer carries every field, defaults included."""
    schemas = _schemas(models, "serialization")
    for schema in schemas.values():
        if "properties" in schema:
            schema["required"] = list(schema["properties"])
    return schemas


def query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a pydantic model of the query string (an absent parameter is None)."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        description = prop.pop("description", "")
        choices = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
        if choices:
            [choice] = choices
            prop.update(choice)
        params.append(query(name, prop, name in schema.get("required", ()), description))
    return params




BEARER = {"type": "http", "scheme": "bearer"}
SECURITY_SCHEMES = {
    "token": {**BEARER, "description": "A named token of API_TOKENS (its role: viewer, analyst, editor or admin), "
                                       "of ADMIN_TOKENS, or ADMIN_TOKEN (admin). The requirement lists the least "
                                       "role; routes needing viewer are open to anyone with PUBLIC_READS=true"},
    "ingestKey": {**BEARER, "description": "INGEST_KEY: the key the landing service sends with what it records"},
}


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /flags/<key> -> /flags/{key}."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def security(access: Access) -> list[dict[str, list[str]]]:
    """The security requirement of a route of the permission matrix (core.roles); none for a public one."""
    if access == PUBLIC:
        return []
    if access == INGEST:
        return [{"ingestKey": []}, {"token": [Role.ADMIN.label]}]
    return [{"token": [lowest_role(access).label]}]


def secure(service: str, paths: dict[str, Any]) -> dict[str, Any]:
    """Each operation with the credentials the permission matrix asks of it, and their 401 and 403."""
    for route, access in PERMISSIONS[service].items():
        method, rule = route.split(" ", 1)
        op = paths.get(openapi_path(rule), {}).get(method.lower())
        if op is None or not security(access):
            continue
        op["security"] = security(access)
        for code in (401, 403):
            op["responses"].setdefault(str(code), error_response(code))
        op["responses"] = dict(sorted(op["responses"].items()))
    return paths


def build_spec(service: str, title: str, description: str, paths: dict[str, Any],
               schemas: dict[str, Any]) -> dict[str, Any]:
    paths = secure(service, {**paths, "/openapi.json": {"get": operation("This description",
                                                                          (200, {"type": "object"}))}})
    schemes = {name for ops in paths.values() for op in ops.values() for need in op.get("security", ())
               for name in need}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, "Health": HEALTH_SCHEMA, **schemas},
            **({"securitySchemes": {name: SECURITY_SCHEMES[name] for name in sorted(schemes)}} if schemes else {}),
        },
    }


def openapi_blueprint(spec: Callable[[], dict[str, Any]]) -> Blueprint:
    bp = Blueprint("openapi", __name__)
    document = spec()

    @bp.get("/openapi.json")
    def openapi_json():
        return document

    return bp
