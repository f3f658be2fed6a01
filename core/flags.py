"""Typed feature flags with percentage rollout, and the page's content as flags (pure functions, no I/O).

Every piece of the landing page an experiment may change is a flag: the template reads flag values,
and an experiment's variants override some of them. A string flag may list its `allowed` values
(the page's layouts, say): then no other value is accepted, for the flag or for an override of it.

A visitor is in a flag's rollout when the GrowthBook v2 hash of (flag key, visitor id) is below the
rollout share, so a visitor keeps the same value and raising the share only adds visitors.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.bucketing import gb_hash

FLAG_TYPES = ("boolean", "string", "number", "color")
MAX_STRING = 200
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_ALLOWED = 20  # values in a flag's `allowed` list
ACCENT_TEXT_COLOR = "#ffffff"  # the landing page writes its call to action in white on the accent colour


def value_problem(kind: str, value: Any, allowed: Sequence[str] | None = None,
                  allow_empty: bool = False) -> str | None:
    """Why value does not fit the flag type (and its allowed values, when it has some), or None when it does.
    A string set through the API must not be empty; a stored one may be (hero_headline used to start empty)."""
    problem = _type_problem(kind, value, allow_empty)
    if problem is None and allowed is not None and value not in allowed:
        return "must be one of " + ", ".join(repr(a) for a in allowed)
    return problem


def allowed_problem(kind: str, allowed: Sequence[Any]) -> str | None:
    """Why a list of allowed values does not fit the flag type, or None when it does."""
    if kind != "string":
        return "only string flags have allowed values"
    if not 1 <= len(allowed) <= MAX_ALLOWED:
        return f"must list 1 to {MAX_ALLOWED} values"
    for value in allowed:
        problem = _type_problem(kind, value)
        if problem:
            return f"{value!r} {problem}"
    if len(set(allowed)) != len(allowed):
        return "must not repeat a value"
    return None


def _type_problem(kind: str, value: Any, allow_empty: bool = False) -> str | None:
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if abs(value) < 1e15 and value == value else "must be a finite number"
    if kind == "color":
        return None if isinstance(value, str) and COLOR_PATTERN.match(value) else "must be a colour like #1a2b3c"
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if not value.strip() and not (allow_empty and value == ""):
            return "must not be empty"
        return None if len(value) <= MAX_STRING else f"must be at most {MAX_STRING} characters"
    return f"unknown flag type {kind!r}"


def in_rollout(key: str, visitor_id: str | None, rollout: float) -> bool:
    if rollout >= 1:
        return True
    if rollout <= 0 or not visitor_id:
        return False
    return gb_hash(key, visitor_id, 2) < rollout


def resolve(flag: Mapping[str, Any], visitor_id: str | None) -> Any:
    """The value one visitor sees: `value` inside the rollout, `off_value` outside it."""
    if in_rollout(flag["key"], visitor_id, float(flag.get("rollout", 1.0))):
        return flag["value"]
    return flag.get("off_value", flag["value"])


def resolve_all(flags: Iterable[Mapping[str, Any]], visitor_id: str | None) -> dict[str, Any]:
    return {flag["key"]: resolve(flag, visitor_id) for flag in flags}


def default_off_value(kind: str, value: Any) -> Any:
    """What visitors outside a rollout see when no off_value is given."""
    return False if kind == "boolean" else value


def _default(key: str, kind: str, value: Any, description: str,
             allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"key": key, "type": kind, "value": value, "off_value": default_off_value(kind, value),
            "rollout": 1.0, "description": description, "allowed": list(allowed) if allowed else None}


LAYOUTS = ("centered", "split")  # the page's layouts: the values of the `layout` flag

# The page's content: the flags every installation starts with (ab_service's seed data), and what the
# landing page shows before ab_service has ever answered. The template reads each of them.
DEFAULT_FLAGS: tuple[dict[str, Any], ...] = (
    _default("hero_headline", "string", "Ship experiments, not guesses", "Headline of the hero section"),
    _default("hero_lede", "string",
             "Landing Lab splits your traffic, renders each variant on the server and tells you which one wins.",
             "Paragraph under the headline"),
    _default("cta_text", "string", "Get started", "Text of the call-to-action button"),
    _default("accent_color", "color", "#3b5bdb", "Accent colour of the page"),
    _default("layout", "string", "centered", "Layout of the hero: centered, or split (text beside the form)",
             LAYOUTS),
    _default("show_testimonials", "boolean", True, "Show the testimonials section"),
    _default("show_promo_section", "boolean", True, "Show the launch-offer section"),
    _default("promo_discount_percent", "number", 20, "Discount shown in the launch offer"),
    _default("enable_signup_form", "boolean", True, "Show the signup form and accept signups"),
)


def default_flag(key: str) -> dict[str, Any]:
    return next(flag for flag in DEFAULT_FLAGS if flag["key"] == key)


def default_value(key: str) -> Any:
    return default_flag(key)["value"]
