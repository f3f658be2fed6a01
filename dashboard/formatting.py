"""What a reader sees of the API's answers: words, percentages and tables (pure: no Streamlit, no HTTP).

Nothing here judges the numbers: significance, verdicts and intervals come from metrics_service; this
module only writes them out (and measures a colour contrast, which is about the page, not the data).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.events import EVENT_TYPES

DASH = "—"
# Colour-blind-safe categorical palette (Okabe & Ito), darkened where needed to keep 3:1 against white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8C6D00", "#56B4E9", "#E69F00", "#000000",
           "#7F7F7F", "#882255")
AA_TEXT = 4.5  # WCAG 2.x level AA: contrast ratio for normal text
VERDICT_TITLES = {
    "significant": "Winner found",
    "no_difference": "No significant difference yet",
    "not_enough_data": "Not enough data yet",
    "sample_ratio_mismatch": "Sample ratio mismatch",
    None: "No data yet",
}


# The context dimensions by the name a reader knows them by (metrics_service's /stats/traffic and
# results?dimension= take the keys).
DIMENSION_LABELS = {"utm_source": "Source (utm_source)", "utm_medium": "Medium (utm_medium)",
                    "utm_campaign": "Campaign (utm_campaign)", "referrer_host": "Referring site",
                    "device": "Device", "browser": "Browser", "os": "Operating system", "country": "Country",
                    "path": "Page path"}


def percent(value: float | None, digits: int | None = None) -> str:
    """0.1091 -> "10.9%"; small shares keep two significant digits ("0.45%"); None -> "—"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    share = value * 100
    if digits is None:
        digits = 1 if share == 0 or abs(share) >= 1 else 2
    return f"{share:.{digits}f}%"


def signed_percent(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value * 100:+.1f}%"


def interval_text(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return DASH
    show = signed_percent if signed else percent
    return f"{show(low)} to {show(high)}"


def uplift_text(row: Mapping[str, Any]) -> str:
    """"+12.3% (+4.1% to +20.5%)" for a treatment; "control" for the control."""
    if row.get("uplift") is None:
        return "control" if row.get("is_control") else DASH
    interval = interval_text(row.get("uplift_ci_low"), row.get("uplift_ci_high"), signed=True)
    return f"{signed_percent(row['uplift'])} ({interval})"


def p_value_text(value: float | None) -> str:
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def significance_text(variant: Mapping[str, Any], control: str | None) -> str:
    if variant["variant"] == control:
        return "control"
    if variant.get("significant") is None:
        return DASH
    if not variant["significant"]:
        return "not significant"
    if variant.get("better") is not None:  # the metric's direction decides (lower may be better)
        return "better" if variant["better"] else "worse"
    return "better" if (variant.get("uplift") or 0) > 0 else "worse"


RESULT_COLUMNS = ["Variant", "Visitors", "Conversions", "Conversion rate", "Uplift vs control",
                  "Chance to beat control", "p-value", "Significance"]


def results_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """The readout as people read it: one row per variant, the control first and marked as such; rates
    and uplifts with their intervals (at the level the readout states)."""
    control = results.get("control")
    rows = []
    for v in results.get("variants", []):
        is_control = v["variant"] == control
        if v.get("mean") is not None:  # a count or value metric: the mean per visitor and its interval
            central = f"{number_text(v['mean'])} ({number_text(v['ci_low'])} to {number_text(v['ci_high'])})"
        else:
            central = f"{percent(v['rate'])} ({interval_text(v['ci_low'], v['ci_high'])})" \
                if v["rate"] is not None else DASH
        rows.append({
            "Variant": v["variant"] + (" (control)" if is_control else ""),
            "Visitors": int(v["visitors"]),
            "Conversions": int(v["conversions"] or 0),
            "Conversion rate": central,
            "Uplift vs control": uplift_text({**v, "is_control": is_control}),
            "Chance to beat control": "control" if is_control else percent(v.get("chance_to_beat_control"), 1),
            "p-value": "control" if is_control else p_value_text(v.get("p_value_sequential")),
            "Significance": significance_text(v, control),
        })
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if results.get("kind") in MEAN_KINDS:
        table = table.rename(columns=MEAN_COLUMNS)
    return table


MEAN_KINDS = ("count", "value")
MEAN_COLUMNS = {"Conversions": "Visitors with the event", "Conversion rate": "Mean per visitor"}
KIND_WORDS = {"conversion": "share of visitors with the event", "count": "events per visitor",
              "value": "value per visitor"}
RECOMMENDATION_TITLES = {"ship": "Ship it", "guardrail": "Blocked by a guardrail", "no_winner": "No winner yet",
                         "keep_running": "Keep running", "sample_ratio_mismatch": "Do not decide yet",
                         "no_data": "No data yet"}


def number_text(value: float | None) -> str:
    """12345.678 -> "12,345.68"; None -> "—"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:,.2f}"


def metric_label(metric: Mapping[str, Any]) -> str:
    """"Revenue per visitor (revenue): value per visitor, lower is better" for a picker or a table."""
    direction = ", lower is better" if metric.get("direction") == "decrease" else ""
    return f"{metric['name']} ({metric['key']}): {KIND_WORDS.get(metric['kind'], metric['kind'])}{direction}"


def metric_rows(metrics: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The metric definitions as a table."""
    return pd.DataFrame([{
        "Metric": m["key"], "Name": m["name"], "Event": m["event_type"], "Kind": KIND_WORDS.get(m["kind"], m["kind"]),
        "Better when": "lower" if m["direction"] == "decrease" else "higher",
        "Cap": number_text(m["cap"]) if m.get("cap") is not None else DASH,
        "Built in": "yes" if m.get("builtin") else "no"} for m in metrics],
        columns=["Metric", "Name", "Event", "Kind", "Better when", "Cap", "Built in"])


def experiment_metrics(definition: Mapping[str, Any] | None, catalogue: Sequence[str]) -> list[str]:
    """The metrics to offer for an experiment: its own (primary, secondary, guardrails) first, then every
    other metric of the catalogue."""
    own = []
    if definition:
        own = [definition.get("primary_metric"), *(definition.get("secondary_metrics") or []),
               *(definition.get("guardrail_metrics") or [])]
    return list(dict.fromkeys([m for m in own if m] + list(catalogue)))


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    """The plan in sentences: visitors needed, and how long that takes at the observed traffic."""
    if plan.get("per_variant") is None:
        return ["No baseline yet: the control has no data on this metric, so the visitors needed are unknown."]
    lines = [f"{plan['per_variant']:,} visitors per variant ({plan['total']:,} in all across {plan['variants']} "
             f"variants) to detect a {percent(plan['mde'])} relative change with {percent(plan['power'], 0)} power "
             f"at alpha {plan['alpha']:g}."]
    if plan.get("expected_days") is None:
        lines.append("No exposed visitors in the last 14 days: the duration is unknown.")
    else:
        source = "this experiment's" if plan.get("daily_source") == "experiment" else "the site's"
        lines.append(f"About {math.ceil(plan['expected_days'])} days at {source} "
                     f"{plan['daily_visitors']:,.0f} exposed visitors a day (last 14 days).")
    return lines


def primary_result(results: Mapping[str, Any]) -> str:
    """A short line for the overview: the verdict's variant and uplift, or what keeps it from one."""
    code = results.get("verdict_code")
    if code == "significant":
        best = next((v for v in results.get("variants", []) if v["variant"] == results.get("verdict_variant")), None)
        if best is not None:
            direction = "beats" if (best.get("uplift") or 0) > 0 else "loses to"
            return f"{best['variant']} {direction} {results.get('control')}: {uplift_text(best)}"
    return VERDICT_TITLES.get(code, VERDICT_TITLES[None])


def variant_order(names: Iterable[str], first: Sequence[str] = ()) -> list[str]:
    """Every variant name once: the given ones (an experiment's, control first) in their order, then the
    rest sorted, so a colour stays with its name across charts and filters."""
    ordered = list(dict.fromkeys(first))
    return ordered + sorted(set(names) - set(ordered))


def event_type_order(names: Iterable[str]) -> list[str]:
    """The built-in event types in their order, then the other (registered) names, sorted."""
    return variant_order(names, EVENT_TYPES)


def variant_colors(names: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


# Audit log ---------------------------------------------------------------------------------------------
def _variants_text(variants: Any) -> str:
    if not isinstance(variants, list):
        return _value_text(variants)
    parts = []
    for v in variants:
        if not isinstance(v, Mapping):
            return _value_text(variants)
        text = f"{v.get('name')} {percent(v.get('weight'), 0)}"
        if v.get("overrides"):
            text += " {" + ", ".join(f"{k}={_value_text(x)}" for k, x in sorted(v["overrides"].items())) + "}"
        parts.append(text)
    return ", ".join(parts)


def _value_text(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)
    return str(value)


def field_text(field: str, value: Any) -> str:
    if field in ("rollout", "coverage") and isinstance(value, int | float) and not isinstance(value, bool):
        return percent(value, 0)
    if field == "variants":
        return _variants_text(value)
    return _value_text(value)


def changed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    old, new = old or {}, new or {}
    return [f for f in dict.fromkeys([*new, *old]) if old.get(f) != new.get(f)]


def audit_rows(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per change: when, who, what, and old → new for each field that changed."""
    rows = []
    for entry in entries:
        old, new = entry.get("old"), entry.get("new")
        if old is None:
            change = "created"
            fields = [f for f in (new or {}) if f not in ("key",)]
            before = ""
            after = "; ".join(f"{f}: {field_text(f, new[f])}" for f in fields)
        else:
            fields = changed_fields(old, new)
            change = ", ".join(fields) or "no change"
            before = "; ".join(f"{f}: {field_text(f, old.get(f))}" for f in fields)
            after = "; ".join(f"{f}: {field_text(f, (new or {}).get(f))}" for f in fields)
        rows.append({
            "When": datetime.fromtimestamp(entry["at"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "Who": entry.get("actor", DASH),
            "What": f"{entry.get('entity', '')} {entry.get('key', '')}".strip(),
            "Changed": change,
            "Old": before,
            "New": after,
        })
    return pd.DataFrame(rows, columns=["When", "Who", "What", "Changed", "Old", "New"])


# Flags ---------------------------------------------------------------------------------------------------
MAX_LABEL = 80


def flag_label(flag: Mapping[str, Any]) -> str:
    """A flag's label: the first line of its description (what it does; at most MAX_LABEL characters),
    else its key in words."""
    first = next((line.strip() for line in (flag.get("description") or "").splitlines() if line.strip()), "")
    if len(first) > MAX_LABEL:
        first = first[:MAX_LABEL - 1].rstrip() + "…"
    return first or flag["key"].replace("_", " ").capitalize()


def flag_help(flag: Mapping[str, Any]) -> str:
    """A flag's help: its whole description, then its key and type."""
    description = (flag.get("description") or "").strip("\n")
    return (description + "\n\n" if description.strip() else "") + f"Flag {flag['key']} ({flag['type']})"


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of a #rrggbb colour."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio between two #rrggbb colours, 1 to 21."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


# Time ----------------------------------------------------------------------------------------------------
def days_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, (end - start).days)
