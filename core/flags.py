"""Typed feature flags with percentage rollout (pure functions, no I/O).

A visitor is in a flag's rollout when the GrowthBook v2 hash of (flag key, visitor id) is below the
rollout share, so a visitor keeps the same value and raising the share only adds visitors.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.bucketing import gb_hash

FLAG_TYPES = ("boolean", "string", "number", "color")
MAX_STRING = 200
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")


def value_problem(kind: str, value: Any, allow_empty: bool = False) -> str | None:
    """Why value does not fit the flag type, or None when it does. A string set through the API must not
    be empty; a stored one may be (hero_headline starts empty: the variant's own headline is shown)."""
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


def _default(key: str, kind: str, value: Any, description: str) -> dict[str, Any]:
    return {"key": key, "type": kind, "value": value, "off_value": default_off_value(kind, value),
            "rollout": 1.0, "description": description}


# The flags every installation starts with (ab_service's seed data), and what the landing page shows
# before ab_service has ever answered.
DEFAULT_FLAGS: tuple[dict[str, Any], ...] = (
    _default("show_promo_section", "boolean", True, "Show the launch-offer section"),
    _default("enable_signup_form", "boolean", True, "Show the signup form and accept signups"),
    _default("show_testimonials", "boolean", True, "Show the testimonials section"),
    _default("cta_text", "string", "Get started", "Text of the call-to-action button"),
    _default("hero_headline", "string", "", "Replaces the variant's headline when set"),
    _default("accent_color", "color", "#3b5bdb", "Accent colour of the page"),
    _default("promo_discount_percent", "number", 20, "Discount shown in the launch offer"),
)


def default_value(key: str) -> Any:
    return next(flag["value"] for flag in DEFAULT_FLAGS if flag["key"] == key)
