"""Targeting: the visitor attributes experiments can target, and checks of GrowthBook conditions over them.

A condition is GrowthBook's condition syntax (MongoDB-like JSON), evaluated by the official `growthbook`
package (`growthbook.core.evalCondition`). That function never raises: an operator it does not know,
or a malformed argument, just fails to match, so a typo would silently keep every visitor out. These
checks refuse such conditions when they are saved instead (pure, no I/O).
"""
from __future__ import annotations

import json
import re
import re._parser as sre_parser  # the standard library's own parse tree of a pattern (Python 3.11+)
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
# A regular expression in a condition runs on every page view against attributes of at most
# MAX_ATTRIBUTE characters, in Python's backtracking engine. These limits keep its worst case to a few
# hundred thousand steps: no quantifier over a group that itself repeats or branches (`(a+)+`, `(a|aa)*`:
# exponential), no backreference, and at most MAX_REGEX_REPEATS repeating quantifiers (each multiplies
# the worst case by about MAX_ATTRIBUTE).
MAX_REGEX_LENGTH = 256
MAX_REGEX_REPEATS = 3

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
        problem = regex_problem(argument)
        if problem:
            problems.append(f"{path}: {problem}")
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


REPEATS = (sre_parser.MAX_REPEAT, sre_parser.MIN_REPEAT, sre_parser.POSSESSIVE_REPEAT)


def regex_problem(pattern: str) -> str | None:
    """Why a condition's regular expression is refused (not one, or one whose matching time can blow up
    on a short attribute), or None."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"a regular expression of at most {MAX_REGEX_LENGTH} characters"
    try:
        tree = sre_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a regular expression ({exc})"
    repeats: list[int] = []
    problem = _regex_items(tree, inside_repeat=False, repeats=repeats)
    if problem is None and len(repeats) > MAX_REGEX_REPEATS:
        problem = f"at most {MAX_REGEX_REPEATS} repeating quantifiers (*, +, {{n,m}}) in one expression"
    return problem


def _regex_items(items, inside_repeat: bool, repeats: list[int]) -> str | None:
    """Walk a parsed pattern; the first construct whose backtracking can explode, or None."""
    for op, argument in items:
        if op == sre_parser.GROUPREF or op == sre_parser.GROUPREF_EXISTS:
            return "no backreferences (\\1, (?P=name)) in a condition's regular expression"
        children: list = []
        if op in REPEATS:
            low, high, body = argument
            if high > 1:
                if inside_repeat:
                    return "no quantifier inside a repeated group, like (a+)+ (matching time can explode)"
                repeats.append(1)
                if any(child_op == sre_parser.BRANCH for child_op, _ in _flatten(body)):
                    return "no alternation inside a repeated group, like (a|b)+ (matching time can explode)"
                problem = _regex_items(body, inside_repeat=True, repeats=repeats)
                if problem:
                    return problem
                continue
            children = [body]
        elif op == sre_parser.SUBPATTERN:
            children = [argument[-1]]
        elif op == sre_parser.BRANCH:
            children = argument[1]
        elif op in (sre_parser.ASSERT, sre_parser.ASSERT_NOT):
            children = [argument[1]]
        for child in children:
            problem = _regex_items(child, inside_repeat, repeats)
            if problem:
                return problem
    return None


def _flatten(items):
    """Every (op, argument) of a parsed pattern, groups opened."""
    for op, argument in items:
        yield op, argument
        if op == sre_parser.SUBPATTERN:
            yield from _flatten(argument[-1])
