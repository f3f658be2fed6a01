"""Validation shared by the services (pure): pydantic errors as the API's [{"index"?, "field", "message"}]
entries, request bodies that refuse null, query strings, and records (stored rows) that do not fit their
model."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator


class Body(BaseModel):
    """A request body, or a part of one: unknown fields and explicit nulls are refused, each naming its
    field. A field that may be omitted has a default; null is not a way to ask for it, except in the
    fields a PATCH lists in NULL_REMOVES, where null removes an optional setting."""

    model_config = ConfigDict(extra="forbid")
    NULL_REMOVES: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULL_REMOVES:
            raise ValueError("must not be null")
        return value


class Query(BaseModel):
    """Query-string parameters: an empty value is an absent parameter; unknown parameters are ignored."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, Mapping) else data


def field_errors(exc: ValidationError, with_index: bool = False) -> list[dict[str, Any]]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        entry: dict[str, Any] = {}
        if with_index:
            entry["index"] = loc.pop(0) if loc and isinstance(loc[0], int) else None
        entry["field"] = ".".join(str(part) for part in loc) or None
        message = err["msg"]
        entry["message"] = message.removeprefix("Value error, ")
        problems.append(entry)
    return problems


class RecordProblem(Exception):
    """A record that does not fit its model; problems name each field, as in a 400 answer."""

    def __init__(self, entity: str, key: str, problems: list[dict[str, Any]]):
        fields = ", ".join(sorted({str(p["field"]) for p in problems if p["field"]})) or "record"
        super().__init__(f"{entity} {key!r}: {fields}")
        self.entity = entity
        self.key = key
        self.fields = fields
        self.problems = problems


class InvalidRecord(RecordProblem):
    """A write refused because the record it would leave does not fit the model (answered 400)."""


class UnreadableRecord(RecordProblem):
    """A stored row that does not fit the model: written by hand, or by a version with looser checks.
    Answered 409 for that one record; lists leave it out and name it."""


def parse_record(model, entity: str, raw: dict[str, Any], json_fields: tuple[str, ...] = (),
                 error: type[RecordProblem] = UnreadableRecord):
    """raw (a row, its json_fields still JSON text, or NULL) as the model; `error` listing every problem
    otherwise."""
    raw, problems = dict(raw), []
    for name in json_fields:
        if raw.get(name) is None:
            continue
        try:
            raw[name] = json.loads(raw[name])
        except (TypeError, ValueError):
            problems.append({"field": name, "message": "is not valid JSON"})
    try:
        record = model.model_validate(raw)
    except ValidationError as exc:
        unread = {p["field"] for p in problems}
        problems += [p for p in field_errors(exc) if str(p["field"]).split(".")[0] not in unread]
    if problems:
        raise error(entity, str(raw.get("key")), problems)
    return record
