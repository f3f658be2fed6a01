"""GET /experiments/<key>/results and /experiments/<key>/timeseries: the analyst's readout."""
from __future__ import annotations

import math
from dataclasses import asdict

from flask import Blueprint, current_app, request

from core.events import DEFAULT_METRIC, METRICS
from core.experiments import WEIGHT_TOLERANCE
from core.keys import KEY_PATTERN
from core.web import ApiError
from metrics_service.reports import parse_interval, parse_time
from metrics_service.series import INTERVALS_MS, cumulative_conversion
from metrics_service.statistics import ALPHA, MIN_CONVERSIONS, MIN_VISITORS, Arm, Verdict, VerdictCode, analyse
from metrics_service.store import EventFilter

bp = Blueprint("results", __name__)



def parse_weights(text: str) -> dict[str, float]:
    """"A:0.5,B:0.5" -> {"A": 0.5, "B": 0.5}; ValueError naming the problem."""
    import re

    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition(":")
        if not sep or not name or not re.match(KEY_PATTERN, name):
            raise ValueError(f"malformed entry {part.strip()!r}: expected VARIANT:WEIGHT")
        try:
            weight = float(value)
        except ValueError as exc:
            raise ValueError(f"weight of {name!r} is not a number") from exc
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {name!r} must be a non-negative number")
        if name in weights:
            raise ValueError(f"variant {name!r} appears twice")
        weights[name] = weight
    if len(weights) < 2:
        raise ValueError("at least two variants are needed")
    if abs(sum(weights.values()) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights sum to {sum(weights.values()):g}, not 1")
    return weights


def _metric() -> str:
    metric = request.args.get("metric", DEFAULT_METRIC)
    if metric not in METRICS:
        raise ApiError(400, f"metric must be one of {', '.join(METRICS)}",
                       [{"field": "metric", "message": f"unknown metric {metric!r}"}])
    return metric


def _filter(key: str) -> EventFilter:
    since = parse_time("since", request.args.get("since"))
    until = parse_time("until", request.args.get("until"))
    return EventFilter(experiment=key, since_ms=since, until_ms=until)


@bp.get("/experiments/<key>/results")
def results(key: str):
    metric = _metric()
    weights_arg = request.args.get("weights")
    try:
        weights = parse_weights(weights_arg) if weights_arg else None
    except ValueError as exc:
        raise ApiError(400, f"weights: {exc}", [{"field": "weights", "message": str(exc)}]) from exc
    rows = current_app.extensions["metrics_store"].exposure_conversions(_filter(key), [metric])
    counts = {r["variant"]: Arm(r["variant"], r["visitors"], r[metric]) for r in rows if r["visitors"]}
    names = sorted(set(counts) | set(weights or {}))
    control = request.args.get("control") or (next(iter(weights)) if weights else (names[0] if names else None))
    if control is not None and names and control not in names:
        raise ApiError(400, f"control {control!r} is not a variant of this experiment",
                       [{"field": "control", "message": "unknown variant"}])
    if weights is None:
        weights = {name: 1 / len(names) for name in names}
    body = {"experiment": key, "metric": metric, "control": control}
    if not names:
        body.update(srm={"p_value": None, "mismatch": False, "expected_weights": {}}, variants=[],
                    verdict=f"No data yet for experiment {key!r}.")
        return body
    readout = analyse([counts.get(name, Arm(name, 0, 0)) for name in names], control, weights, ALPHA)
    body.update(srm=asdict(readout.srm), variants=[asdict(v) for v in readout.variants],
                verdict=verdict_sentence(readout.verdict, metric, control, ALPHA))
    return body


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def verdict_sentence(verdict: Verdict, metric: str, control: str, alpha: float) -> str:
    """The verdict in one plain sentence, for the analyst."""
    if verdict.code == VerdictCode.SAMPLE_RATIO_MISMATCH:
        return ("Sample ratio mismatch: visitors are not split as configured, so these results cannot be "
                "trusted until the cause is fixed.")
    if verdict.code == VerdictCode.NOT_ENOUGH_DATA:
        smallest = verdict.variant
        have = (f" (smallest: {smallest.variant} with {smallest.visitors} visitors, {smallest.conversions} "
                f"conversions)") if smallest else ""
        return (f"Not enough data yet: every variant needs at least {MIN_VISITORS} visitors and "
                f"{MIN_CONVERSIONS} {metric} conversions before a winner can be called{have}.")
    if verdict.code == VerdictCode.NO_DIFFERENCE:
        return (f"No significant difference from {control} on {metric} yet "
                f"(always-valid p ≥ {alpha}); keep the experiment running or accept no effect.")
    best = verdict.variant
    direction = "beats" if (best.uplift or 0) > 0 else "is worse than"
    interval = ""
    if best.uplift_ci_low is not None:
        interval = f" ({(1 - alpha) * 100:g}% CI {_pct(best.uplift_ci_low)} to {_pct(best.uplift_ci_high)})"
    uplift = _pct(best.uplift) if best.uplift is not None else "n/a"
    return (f"{best.variant} {direction} {control} on {metric}: {uplift}{interval}, "
            f"always-valid p = {best.p_value_sequential:.3g}.")


@bp.get("/experiments/<key>/timeseries")
def cumulative(key: str):
    metric = _metric()
    interval = parse_interval()
    cohorts = current_app.extensions["metrics_store"].cohorts(_filter(key), metric)
    return {"experiment": key, "metric": metric, "interval": interval,
            "series": cumulative_conversion(cohorts, INTERVALS_MS[interval])}
