"""Turning pydantic validation errors into the API's [{"index"?, "field", "message"}] entries."""
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


def parse_model(model, data: Any, what: str = "body"):
    """Validate data into a pydantic model; a 400 ApiError listing every problem otherwise."""
    from core.web import ApiError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = field_errors(exc)
        fields = ", ".join(sorted({str(p["field"]) for p in problems if p["field"]})) or what
        raise ApiError(400, f"invalid {what}: {fields}", problems) from exc
