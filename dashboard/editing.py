"""The Experiments page's pure parts: checks shown next to each field, equal weights, overrides, preview
links and the sentence a confirmation asks (no Streamlit, no HTTP).

ab_service checks everything again; these checks only answer before a round trip.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import quote

from core.experiments import WEIGHT_TOLERANCE
from core.keys import KEY_PATTERN, MAX_KEY_LENGTH
from dashboard.formatting import field_text, percent

MAX_CONDITION_BYTES = 2048
EXAMPLE_CONDITION = '{"utm_source": "newsletter", "device": {"$in": ["mobile", "tablet"]}}'


def equal_shares(count: int) -> list[float]:
    """count weights of equal share that sum to 1 (the last takes the rounding)."""
    shares = [round(1 / count, 6)] * count
    shares[-1] = round(1 - sum(shares[:-1]), 6)
    return shares


def weights_problem(weights: Sequence[float]) -> str | None:
    """The live check shown under the weight inputs."""
    total = sum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"Weights sum to {total:.3f}; they must sum to 1."
    return None


def key_problem(key: str) -> str | None:
    if not key:
        return "Give the experiment a key, e.g. hero_test."
    if len(key) > MAX_KEY_LENGTH:
        return f"At most {MAX_KEY_LENGTH} characters."
    if not re.match(KEY_PATTERN, key):
        return "Letters, digits, _ . and - only."
    return None


def names_problem(names: Sequence[str]) -> str | None:
    if any(not n for n in names):
        return "Every variant needs a name."
    bad = [n for n in names if not re.match(KEY_PATTERN, n) or len(n) > MAX_KEY_LENGTH]
    if bad:
        return f"Variant names use letters, digits, _ . and - only: {', '.join(bad)}."
    if len(set(names)) != len(names):
        return "Variant names must be different."
    return None


def variants_problem(variants: Sequence[Mapping[str, Any]]) -> str | None:
    """The first problem of a variant list's weights or names."""
    return weights_problem([v["weight"] for v in variants]) or names_problem([v["name"] for v in variants])


def parse_condition(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(condition, None) for a JSON object (None when the text is blank), or (None, the problem)."""
    if not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    if not isinstance(value, dict):
        return None, "A condition is a JSON object, e.g. " + EXAMPLE_CONDITION
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_CONDITION_BYTES:
        return None, f"At most {MAX_CONDITION_BYTES} bytes of JSON."
    return value, None


def condition_text(condition: Mapping[str, Any] | None) -> str:
    return json.dumps(condition, indent=2) if condition else ""


def namespace_problem(name: str, start: float, end: float) -> str | None:
    if not re.match(KEY_PATTERN, name or ""):
        return "A namespace name uses letters, digits, _ . and - only."
    if not 0 <= start < end <= 1:
        return "The range must start before it ends, within 0–100%."
    return None


def overrides_of(values: Mapping[str, Any], flags: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A variant's overrides: the values that differ from the flag's own (a variant that shows the flag's
    value needs no override, and follows the flag if it changes)."""
    return {key: value for key, value in values.items() if key in flags and value != flags[key]["value"]}


def preview_url(landing_url: str, experiment: str, variant: str) -> str:
    """The landing page as a visitor in that variant sees it (a forced preview, left out of stats)."""
    return f"{landing_url}/?force_variant={quote(experiment, safe='')}:{quote(variant, safe='')}"


def variants_text(variants: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{v['name']} {percent(v['weight'], 0)}" for v in variants)


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per field a save changes: "coverage: 100% → 80%"."""
    lines = []
    for field, value in new.items():
        before = old.get(field)
        if field == "variants":
            before_v = [{"name": v["name"], "weight": v["weight"], "overrides": v.get("overrides") or {}}
                        for v in before or []]
            after_v = [{"name": v["name"], "weight": v["weight"], "overrides": v.get("overrides") or {}}
                       for v in value]
            if before_v == after_v:
                continue
            if [(v["name"], v["weight"]) for v in before_v] != [(v["name"], v["weight"]) for v in after_v]:
                lines.append(f"weights: {variants_text(before_v)} → {variants_text(after_v)}")
            for b, a in zip(before_v, after_v, strict=False):
                if b["overrides"] != a["overrides"]:
                    lines.append(f"content of {a['name']}: {_overrides_text(b['overrides'])} → "
                                 f"{_overrides_text(a['overrides'])}")
            continue
        if before != value:
            lines.append(f"{field}: {field_text(field, before)} → {field_text(field, value)}")
    return lines


def _overrides_text(overrides: Mapping[str, Any]) -> str:
    if not overrides:
        return "the flags' values"
    return ", ".join(f"{k} = {field_text('value', v)}" for k, v in sorted(overrides.items()))


def start_consequence(experiment: Mapping[str, Any]) -> str:
    """What starting an experiment does, in one sentence."""
    changed = sorted({k for v in experiment["variants"] for k in (v.get("overrides") or {})})
    share = percent(experiment.get("coverage", 1.0), 0)
    text = f"{share} of eligible visitors will be split {variants_text(experiment['variants'])}"
    return text + (f", and see their variant's {', '.join(changed)}." if changed else ".")


def supports_content(experiments: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ab_service serves variant overrides, namespaces and conditions (older ones do not)."""
    return bool(experiments) and all("overrides" in v for e in experiments for v in e["variants"]) and all(
        "namespace" in e and "condition" in e for e in experiments)


def schedule_iso(day: date, clock: time) -> str:
    """A day and a time of day in UTC, as ab_service takes a start_at or stop_at."""
    return datetime.combine(day, clock.replace(tzinfo=None), tzinfo=UTC).isoformat().replace("+00:00", "Z")


def schedule_parts(iso: str | None, default: datetime) -> tuple[date, time]:
    """The UTC day and time of day of a start_at or stop_at as ab_service answers it (default: none set)."""
    when = datetime.fromisoformat(iso).astimezone(UTC) if iso else default
    return when.date(), when.time().replace(second=0, microsecond=0)


def schedule_text(experiment: Mapping[str, Any]) -> str:
    """"starts 2026-12-01 09:00 UTC · stops ..." for the experiments table; empty when nothing is scheduled."""
    parts = [f"{word} {datetime.fromisoformat(experiment[field]).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
             for field, word in (("start_at", "starts"), ("stop_at", "stops")) if experiment.get(field)]
    return " · ".join(parts)
