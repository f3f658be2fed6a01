"""Turning pydantic validation errors into the API's [{"index"?, "field", "message"}] entries (pure)."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError


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
