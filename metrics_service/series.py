"""Shaping time series and funnels from aggregate rows (pure functions)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from core.events import from_millis

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
INTERVALS_MS = {"hour": HOUR_MS, "day": DAY_MS}


def iso(ms: int) -> str:
    return from_millis(ms).isoformat().replace("+00:00", "Z")


def bucket_start(ms: int, interval_ms: int) -> int:
    return ms - ms % interval_ms


def event_series(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"bucket": iso(r["bucket"]), "variant": r["variant"], "events": r["events"], "visitors": r["visitors"]}
        for r in rows
    ]


def cumulative_conversion(
    cohorts: Iterable[tuple[str, int, int, int]], interval_ms: int
) -> list[dict[str, Any]]:
    """Cumulative exposed visitors, their conversions and the rate per (bucket, variant).

    Visitors enter in the bucket of their first event (their cohort) and count as converted if they
    have the metric event, whenever it happened: the curve shows how the experiment's readout moved
    as visitors arrived.
    """
    exposed: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    converted: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    buckets: set[int] = set()
    for variant, cohort_ms, visitors, conversions in cohorts:
        start = bucket_start(cohort_ms, interval_ms)
        exposed[variant][start] += visitors
        converted[variant][start] += conversions
        buckets.add(start)
    series = []
    for variant in sorted(exposed):
        visitors = conversions = 0
        for start in sorted(buckets):
            visitors += exposed[variant].get(start, 0)
            conversions += converted[variant].get(start, 0)
            if visitors:
                series.append({"bucket": iso(start), "variant": variant, "visitors": visitors,
                               "conversions": conversions, "rate": conversions / visitors})
    return series


def funnel_steps(rows: Iterable[dict[str, Any]], steps: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant: each step's visitors, conversion from the previous step and from the first."""
    variants = []
    for row in rows:
        shaped = []
        first = row[steps[0]]
        previous = None
        for step in steps:
            count = row[step]
            shaped.append({
                "step": step,
                "visitors": count,
                "conversion_from_previous": None if previous is None else (count / previous if previous else None),
                "conversion_from_start": count / first if first else None,
            })
            previous = count
        variants.append({"variant": row["variant"], "steps": shaped})
    return variants
