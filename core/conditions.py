"""Targeting: the visitor attributes experiments can target, and checks of GrowthBook conditions over them.

A condition is GrowthBook's condition syntax (MongoDB-like JSON), evaluated by the official `growthbook`
package (`growthbook.core.evalCondition`). That function never raises: an operator it does not know,
or a malformed argument, just fails to match, so a typo would silently keep every visitor out. These
checks refuse such conditions when they are saved instead (pure, no I/O).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# The attributes the landing service computes for each page view (and /assign accepts), with their
# JSON types. Strings are trimmed, lower-cased where they come from a URL, and at most MAX_ATTRIBUTE long.
ATTRIBUTES: dict[str, str] = {
    "id": "string",
    "device": "string",  # one of DEVICES
    "browser": "string",
    "os": "string",
    "utm_source": "string",
    "utm_medium": "string",
    "utm_campaign": "string",
    "referrer_host": "string",
    "path": "string",
    "returning": "boolean",
}
DEVICES = ("desktop", "mobile", "tablet")
MAX_ATTRIBUTE = 64
MAX_CONDITION_BYTES = 2048

LOGICAL = ("$and", "$or", "$nor")  # a list of conditions
LIST_OPERATORS = ("$in", "$nin", "$ini", "$nini", "$all", "$alli")
REGEX_OPERATORS = ("$regex", "$regexi", "$notRegex", "$notRegexi")
ORDER_OPERATORS = ("$lt", "$lte", "$gt", "$gte", "$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte")
TYPES = ("string", "number", "boolean", "array", "object", "null")
# Every operator GrowthBook applies to an attribute's value, except the saved-group ones ($inGroup,
# $notInGroup): the features payload carries no saved groups.
VALUE_OPERATORS = ("$eq", "$ne", *ORDER_OPERATORS, *LIST_OPERATORS, *REGEX_OPERATORS,
                   "$exists", "$type", "$not", "$size", "$elemMatch")


def condition_problems(condition: Any) -> list[str]:
    """Everything wrong with a condition, each naming where ("$or.1.device.$in: must be a list"); [] if none."""
    if not isinstance(condition, Mapping):
        return ["must be a JSON object"]
    size = len(json.dumps(condition, separators=(",", ":")).encode())
    if size > MAX_CONDITION_BYTES:
        return [f"must be at most {MAX_CONDITION_BYTES} bytes of JSON (it is {size})"]
    problems: list[str] = []
    _condition(condition, "", problems)
    return problems


def _at(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _condition(condition: Any, path: str, problems: list[str]) -> None:
    if not isinstance(condition, Mapping):
        problems.append(f"{path}: must be a condition object")
        return
    for key, value in condition.items():
        here = _at(path, key)
        if key in LOGICAL:
            if not isinstance(value, list):
                problems.append(f"{here}: must be a list of conditions")
                continue
            for index, item in enumerate(value):
                _condition(item, _at(here, index), problems)
        elif key == "$not":
            _condition(value, here, problems)
        elif key.startswith("$"):
            problems.append(f"{here}: unknown operator (known here: {', '.join((*LOGICAL, '$not'))})")
        elif key not in ATTRIBUTES:
            problems.append(f"{here}: unknown attribute (known: {', '.join(ATTRIBUTES)})")
        else:
            _value(value, here, problems)


def _is_operators(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(key).startswith("$") for key in value)


def _value(value: Any, path: str, problems: list[str]) -> None:
    """A condition on one value: a literal (compared for equality) or an object of operators."""
    if not _is_operators(value):
        return
    if not all(str(key).startswith("$") for key in value):
        problems.append(f"{path}: mixes operators and plain keys")
        return
    for operator, argument in value.items():
        _operator(operator, argument, _at(path, operator), problems)


def _operator(operator: str, argument: Any, path: str, problems: list[str]) -> None:
    if operator not in VALUE_OPERATORS:
        problems.append(f"{path}: unknown operator (known: {', '.join(VALUE_OPERATORS)})")
    elif operator in LIST_OPERATORS and not isinstance(argument, list):
        problems.append(f"{path}: must be a list")
    elif operator in REGEX_OPERATORS:
        if not isinstance(argument, str):
            problems.append(f"{path}: must be a regular expression (a string)")
            return
        try:
            re.compile(argument)
        except re.error as exc:
            problems.append(f"{path}: not a regular expression ({exc})")
    elif operator in ORDER_OPERATORS and (isinstance(argument, bool) or not isinstance(argument, str | int | float)):
        problems.append(f"{path}: must be a string or a number")
    elif operator == "$exists" and not isinstance(argument, bool):
        problems.append(f"{path}: must be true or false")
    elif operator == "$type" and argument not in TYPES:
        problems.append(f"{path}: must be one of {', '.join(TYPES)}")
    elif operator in ("$not", "$size"):
        _value(argument, path, problems)
    elif operator == "$elemMatch" and not isinstance(argument, Mapping):
        problems.append(f"{path}: must be an object")
