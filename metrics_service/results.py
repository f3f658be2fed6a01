"""GET /experiments/<key>/results and /experiments/<key>/timeseries: the analyst's readout."""
from __future__ import annotations

from flask import Blueprint, current_app, request

from core.web import ApiError, parse_model
from metrics_service.schemas import (
    CumulativeQuery,
    CumulativeSeries,
    Results,
    ResultsQuery,
    SegmentResults,
)
from metrics_service.series import INTERVALS_MS, cumulative_conversion
from metrics_service.statistics import (
    ALPHA,
    MIN_CONVERSIONS,
    MIN_VISITORS,
    SEGMENT_ADJUSTMENT,
    Arm,
    SrmResult,
    Verdict,
    VerdictCode,
    analyse,
    segment_results,
)
from metrics_service.store import EventFilter

bp = Blueprint("results", __name__)


SEGMENT_CAUTION = ("Segment results are exploratory: with many segments some differ by chance, so p-values are "
                   "adjusted across segments ({adjustment}) and segments below {visitors} visitors or {conversions} "
                   "conversions per variant are not judged. Confirm a segment's effect with an experiment of its own.")


def _filter(key: str, query: ResultsQuery | CumulativeQuery) -> EventFilter:
    return EventFilter(experiment=key, since_ms=query.since_ms, until_ms=query.until_ms, segment=query.segment)


def _control(query: ResultsQuery, names: list[str]) -> str | None:
    """The control: as asked, else the first of the weights, else the first variant; 400 for an unknown one."""
    weights = query.weights
    control = query.control or (next(iter(weights)) if weights else (names[0] if names else None))
    if control is not None and names and control not in names:
        raise ApiError(400, f"control {control!r} is not a variant of this experiment",
                       [{"field": "control", "message": "unknown variant"}])
    return control


@bp.get("/experiments/<key>/results")
def results(key: str):
    query = parse_model(ResultsQuery, request.args.to_dict(), "query")
    if query.dimension is not None:
        return segmented(key, query)
    metric, weights = query.metric, query.weights
    rows = current_app.extensions["metrics_store"].exposure_conversions(_filter(key, query), [metric])
    counts = {r["variant"]: Arm(r["variant"], r["visitors"], r[metric]) for r in rows if r["visitors"]}
    names = sorted(set(counts) | set(weights or {}))
    control = _control(query, names)
    if not names:
        return Results(experiment=key, metric=metric, control=control, srm=SrmResult(None, False, {}), variants=[],
                       verdict=f"No data yet for experiment {key!r}.", verdict_code=None, verdict_variant=None,
                       alpha=ALPHA).model_dump(mode="json")
    if weights is None:
        weights = {name: 1 / len(names) for name in names}
    readout = analyse([counts.get(name, Arm(name, 0, 0)) for name in names], control, weights, ALPHA)
    verdict = readout.verdict
    return Results(experiment=key, metric=metric, control=control, srm=readout.srm, variants=readout.variants,
                   verdict=verdict_sentence(verdict, metric, control, ALPHA), verdict_code=verdict.code,
                   verdict_variant=verdict.variant.variant if verdict.variant else None,
                   alpha=ALPHA).model_dump(mode="json")


def segmented(key: str, query: ResultsQuery):
    """The readout per value of query.dimension, p-values adjusted across the segments."""
    metric = query.metric
    rows = current_app.extensions["metrics_store"].exposure_conversions(_filter(key, query), [metric], query.dimension)
    segments: dict[str, list[Arm]] = {}
    for row in rows:
        if row["visitors"]:
            segments.setdefault(row["value"], []).append(Arm(row["variant"], row["visitors"], row[metric]))
    names = sorted({arm.variant for arms in segments.values() for arm in arms} | set(query.weights or {}))
    control = _control(query, names)
    caution = SEGMENT_CAUTION.format(adjustment="Benjamini-Hochberg", visitors=MIN_VISITORS,
                                     conversions=MIN_CONVERSIONS)
    return SegmentResults(experiment=key, metric=metric, dimension=query.dimension, control=control,
                          segments=segment_results(segments, control, ALPHA) if control else [],
                          adjustment=SEGMENT_ADJUSTMENT, alpha=ALPHA, min_visitors=MIN_VISITORS,
                          min_conversions=MIN_CONVERSIONS, caution=caution).model_dump(mode="json")


@bp.get("/experiments/<key>/timeseries")
def cumulative(key: str):
    query = parse_model(CumulativeQuery, request.args.to_dict(), "query")
    cohorts = current_app.extensions["metrics_store"].cohorts(_filter(key, query), query.metric)
    return CumulativeSeries(experiment=key, metric=query.metric, interval=query.interval,
                            series=cumulative_conversion(cohorts, INTERVALS_MS[query.interval])).model_dump(mode="json")


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

