"""GET /experiments/<key>/results, /summary, /plan and /timeseries: the analyst's readouts."""
from __future__ import annotations

import math
from datetime import UTC, datetime

from flask import Blueprint, current_app, request

from core.web import ApiError, json_body, parse_model
from metrics_service.catalogue import catalogue, find_metric, unknown_metric
from metrics_service.means import MeanArm, analyse_means
from metrics_service.planning import expected_days, visitors_per_variant_mean, visitors_per_variant_proportion
from metrics_service.recommendation import recommend, significantly_worse
from metrics_service.schemas import (
    CumulativeQuery,
    CumulativeSeries,
    GuardrailResults,
    MetricRecord,
    Plan,
    PlanIn,
    PlanQuery,
    Recommendation,
    RecommendationCode,
    Results,
    ResultsQuery,
    SegmentResults,
    Summary,
    SummaryQuery,
    Window,
)
from metrics_service.sequential import GroupSequentialPlan, SequentialMethod
from metrics_service.series import DAY_MS, INTERVALS_MS, cumulative_conversion
from metrics_service.statistics import (
    ALPHA,
    MIN_CONVERSIONS,
    MIN_VISITORS,
    SEGMENT_ADJUSTMENT,
    Arm,
    Direction,
    SrmResult,
    Verdict,
    VerdictCode,
    analyse,
    segment_results,
)
from metrics_service.store import EventFilter

bp = Blueprint("results", __name__)
PLAN_WINDOW_DAYS = 14  # the plan's expected duration reads the exposed visitors of the last 14 days


SEGMENT_CAUTION = ("Segment results are exploratory: with many segments some differ by chance, so p-values are "
                   "adjusted across segments ({adjustment}) and segments below {visitors} visitors or {conversions} "
                   "conversions per variant are not judged. Confirm a segment's effect with an experiment of its own.")


def _filter(key: str, query: Window) -> EventFilter:
    return EventFilter(experiment=key, since_ms=query.since_ms, until_ms=query.until_ms,
                       segment=getattr(query, "segment", None))


def _metric(key: str) -> MetricRecord:
    metric = find_metric(key)
    if metric is None:
        raise unknown_metric(key)
    return metric


def _arms(key: str, metric: MetricRecord, window: Window | None) -> dict[str, Arm | MeanArm]:
    """Per variant with exposed visitors: the counts (conversion) or sums (count, value) of the metric."""
    if metric.builtin:
        rows = current_app.extensions["metrics_store"].exposure_conversions(
            _filter(key, window or Window()), [metric.key])
        return {r["variant"]: Arm(r["variant"], r["visitors"], r[metric.key]) for r in rows if r["visitors"]}
    narrowed = [name for name in ("since", "until", "segment", "dimension") if getattr(window, name, None)]
    if narrowed:
        raise ApiError(400, f"{narrowed[0]} applies to the built-in conversions only",
                       [{"field": narrowed[0], "message": "not for this metric"}])
    sums = catalogue().metric_sums(key, metric.key)
    if metric.kind == "conversion":
        return {v: Arm(v, s["exposed"], s["visitors"]) for v, s in sums.items() if s["exposed"]}
    total = "sum_count" if metric.kind == "count" else "sum_value"
    return {v: MeanArm(v, s["exposed"], s[total], s[f"{total}_sq"], s["visitors"]) for v, s in sums.items()
            if s["exposed"]}


def _control(names: list[str], control: str | None, weights: dict[str, float] | None) -> str | None:
    control = control or (next(iter(weights)) if weights else (names[0] if names else None))
    if control is not None and names and control not in names:
        raise ApiError(400, f"control {control!r} is not a variant of this experiment",
                       [{"field": "control", "message": "unknown variant"}])
    return control


def metric_results(key: str, metric: MetricRecord, control: str | None, weights: dict[str, float] | None,
                   window: Window | None = None) -> Results:
    """The readout of one metric. With a plan saved for it (and no time window), group-sequential:
    the looks this reading takes are recorded."""
    arms = _arms(key, metric, window)
    names = sorted(set(arms) | set(weights or {}))
    control = _control(names, control, weights)
    shape = {"experiment": key, "metric": metric.key, "kind": metric.kind, "direction": metric.direction,
             "control": control, "alpha": ALPHA}
    if not names:
        return Results(**shape, srm=SrmResult(None, False, {}), variants=[], verdict=f"No data yet for experiment "
                       f"{key!r}.", verdict_code=None, verdict_variant=None)
    if weights is None:
        weights = {name: 1 / len(names) for name in names}
    narrowed = window is not None and any(getattr(window, name, None) for name in ("since", "until", "segment"))
    saved = None if narrowed else catalogue().plan(key, metric.key)
    plan = GroupSequentialPlan(saved["per_variant"], catalogue().looks(key, metric.key)) if saved else None
    direction = Direction(metric.direction)
    if metric.kind == "conversion":
        readout = analyse([arms.get(n, Arm(n, 0, 0)) for n in names], control, weights, ALPHA, direction, plan)
    else:
        readout = analyse_means([arms.get(n, MeanArm(n, 0, 0.0, 0.0, 0)) for n in names], control, weights, ALPHA,
                                direction, plan)
    if readout.new_looks:
        catalogue().record_looks(key, metric.key, {v: (len(plan.looks.get(v, ())), look)
                                                   for v, look in readout.new_looks.items()})
    verdict = readout.verdict
    return Results(**shape, srm=readout.srm, variants=readout.variants, method=verdict.method,
                   verdict=verdict_sentence(verdict, metric.key, control, ALPHA), verdict_code=verdict.code,
                   verdict_variant=verdict.variant.variant if verdict.variant else None)


@bp.get("/experiments/<key>/results")
def results(key: str):
    query = parse_model(ResultsQuery, request.args.to_dict(), "query")
    metric = _metric(query.metric)
    if query.dimension is not None and metric.builtin:
        return segmented(key, query)
    return metric_results(key, metric, query.control, query.weights, query).model_dump(mode="json")


def segmented(key: str, query: ResultsQuery):
    """The readout per value of query.dimension, p-values adjusted across the segments (built-in conversions)."""
    metric = query.metric
    rows = current_app.extensions["metrics_store"].exposure_conversions(_filter(key, query), [metric], query.dimension)
    segments: dict[str, list[Arm]] = {}
    for row in rows:
        if row["visitors"]:
            segments.setdefault(row["value"], []).append(Arm(row["variant"], row["visitors"], row[metric]))
    names = sorted({arm.variant for arms in segments.values() for arm in arms} | set(query.weights or {}))
    control = _control(names, query.control, query.weights)
    caution = SEGMENT_CAUTION.format(adjustment="Benjamini-Hochberg", visitors=MIN_VISITORS,
                                     conversions=MIN_CONVERSIONS)
    return SegmentResults(experiment=key, metric=metric, dimension=query.dimension, control=control,
                          segments=segment_results(segments, control, ALPHA) if control else [],
                          adjustment=SEGMENT_ADJUSTMENT, alpha=ALPHA, min_visitors=MIN_VISITORS,
                          min_conversions=MIN_CONVERSIONS, caution=caution).model_dump(mode="json")


@bp.get("/experiments/<key>/summary")
def summary(key: str):
    query = parse_model(SummaryQuery, request.args.to_dict(), "query")
    roles = {"primary": [query.primary], "secondary": query.secondary, "guardrails": query.guardrails}
    for field, keys in roles.items():
        for metric_key in keys:
            if find_metric(metric_key) is None:
                raise unknown_metric(metric_key, field)
    read = {field: [metric_results(key, _metric(k), query.control, query.weights) for k in keys]
            for field, keys in roles.items()}
    [primary] = read["primary"]
    decision = recommend(primary, read["guardrails"])
    recommendation = Recommendation(code=decision.code, variant=decision.variant,
                                    blocking_guardrail=decision.blocking_guardrail, method=primary.method,
                                    sentence=recommendation_sentence(decision.code, decision.variant,
                                                                     decision.blocking_guardrail, primary))
    guardrails = [GuardrailResults(**g.model_dump(),
                                   breached=any(significantly_worse(g, v.variant) for v in g.variants))
                  for g in read["guardrails"]]
    return Summary(experiment=key, control=primary.control, primary=primary, secondary=read["secondary"],
                   guardrails=guardrails, recommendation=recommendation).model_dump(mode="json")


def _observed_baseline(readout: Results) -> tuple[float | None, float | None]:
    control = next((v for v in readout.variants if v.variant == readout.control), None)
    if control is None:
        return None, None
    return (control.rate, None) if readout.kind == "conversion" else (control.mean, control.std)


def _daily_visitors(key: str) -> tuple[float | None, str | None]:
    """Exposed visitors a day over the last PLAN_WINDOW_DAYS days (from the first day with any, if
    later): the experiment's, or the site's while the experiment has none."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    today = now - now % DAY_MS
    since = today - (PLAN_WINDOW_DAYS - 1) * DAY_MS
    for experiment, source in ((key, "experiment"), (None, "site")):
        days = catalogue().daily_exposed(experiment, since)
        if sum(days.values()):
            observed = (today - min(d for d, n in days.items() if n)) // DAY_MS + 1
            return sum(days.values()) / observed, source
    return None, None


def _plan(key: str, metric: MetricRecord, mde: float, power: float, alpha: float, baseline: float | None,
          std: float | None, control: str | None, weights: dict[str, float] | None) -> Plan:
    readout = metric_results(key, metric, control, weights)
    observed_baseline, observed_std = _observed_baseline(readout)
    baseline = observed_baseline if baseline is None else baseline
    std = (observed_std if std is None else std) if metric.kind != "conversion" else None
    variants = len(weights) if weights else max(len(readout.variants), 2)
    per_variant = None
    try:
        if baseline is not None and metric.kind == "conversion":
            per_variant = visitors_per_variant_proportion(baseline, mde, alpha, power)
        elif baseline is not None and std:
            per_variant = visitors_per_variant_mean(baseline, std, mde, alpha, power)
    except ValueError as exc:
        raise ApiError(400, f"no plan: {exc}", [{"field": "mde", "message": str(exc)}]) from exc
    daily, source = _daily_visitors(key)
    days = None
    if per_variant is not None and daily:
        days = expected_days(per_variant, variants, daily, min(weights.values()) if weights else None)
    saved = catalogue().plan(key, metric.key)
    return Plan(experiment=key, metric=metric.key, kind=metric.kind, mde=mde, power=power, alpha=alpha,
                baseline=baseline, std=std, per_variant=per_variant, variants=variants,
                total=per_variant * variants if per_variant is not None else None, daily_visitors=daily,
                daily_source=source, expected_days=days if days is None or math.isfinite(days) else None,
                saved=saved is not None, saved_per_variant=saved["per_variant"] if saved else None)


@bp.get("/experiments/<key>/plan")
def plan(key: str):
    q = parse_model(PlanQuery, request.args.to_dict(), "query")
    return _plan(key, _metric(q.metric), q.mde, q.power, q.alpha, q.baseline, q.std, q.control,
                 q.weights).model_dump(mode="json")


@bp.post("/experiments/<key>/plan")
def save_plan(key: str):
    body = parse_model(PlanIn, json_body(), "plan")
    planned = _plan(key, _metric(body.metric), body.mde, body.power, body.alpha, None, None, None, None)
    if planned.per_variant is None:
        raise ApiError(400, "no plan without a baseline: the control has no data on this metric yet",
                       [{"field": "metric", "message": "no data yet"}])
    if not catalogue().save_plan(key, body.metric, planned.per_variant, body.mde, body.power, body.alpha):
        raise ApiError(409, f"the plan of {body.metric!r} is fixed: its group-sequential readout has taken looks",
                       [{"field": "metric", "message": "plan fixed once looks are taken"}], code="conflict")
    return planned.model_copy(update={"saved": True, "saved_per_variant": planned.per_variant}).model_dump(
        mode="json"), 201


@bp.get("/experiments/<key>/timeseries")
def cumulative(key: str):
    query = parse_model(CumulativeQuery, request.args.to_dict(), "query")
    cohorts = current_app.extensions["metrics_store"].cohorts(_filter(key, query), query.metric)
    return CumulativeSeries(experiment=key, metric=query.metric, interval=query.interval,
                            series=cumulative_conversion(cohorts, INTERVALS_MS[query.interval])).model_dump(mode="json")


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


METHOD_WORDS = {SequentialMethod.MSPRT: "always-valid p", SequentialMethod.GROUP_SEQUENTIAL: "group-sequential p"}


def verdict_sentence(verdict: Verdict, metric: str, control: str, alpha: float) -> str:
    """The verdict in one plain sentence, for the analyst."""
    if verdict.code == VerdictCode.SAMPLE_RATIO_MISMATCH:
        return ("Sample ratio mismatch: visitors are not split as configured, so these results cannot be "
                "trusted until the cause is fixed.")
    if verdict.code == VerdictCode.NOT_ENOUGH_DATA:
        smallest = verdict.variant
        have = (f" (smallest: {smallest.variant} with {smallest.visitors} visitors, {smallest.conversions} "
                f"conversions)") if smallest and smallest.conversions is not None else ""
        return (f"Not enough data yet: every variant needs at least {MIN_VISITORS} visitors and "
                f"{MIN_CONVERSIONS} {metric} conversions before a winner can be called{have}.")
    words = METHOD_WORDS[verdict.method]
    if verdict.code == VerdictCode.NO_DIFFERENCE:
        return (f"No significant difference from {control} on {metric} yet "
                f"({words} ≥ {alpha}); keep the experiment running or accept no effect.")
    best = verdict.variant
    judged = "beats" if best.better else "is worse than"
    interval = ""
    if best.uplift_ci_low is not None:
        interval = f" ({(1 - alpha) * 100:g}% CI {_pct(best.uplift_ci_low)} to {_pct(best.uplift_ci_high)})"
    uplift = _pct(best.uplift) if best.uplift is not None else "n/a"
    return (f"{best.variant} {judged} {control} on {metric}: {uplift}{interval}, "
            f"{words} = {best.p_value_sequential:.3g}.")


def recommendation_sentence(code: RecommendationCode, variant: str | None, guardrail: str | None,
                            primary: Results) -> str:
    method = "the group-sequential test of the saved plan" if primary.method == SequentialMethod.GROUP_SEQUENTIAL \
        else "the always-valid p-value"
    if code == RecommendationCode.SHIP:
        return (f"Ship {variant}: it wins on {primary.metric} ({method}) and no guardrail is significantly worse.")
    if code == RecommendationCode.GUARDRAIL:
        return (f"Do not ship {variant}: it wins on {primary.metric} ({method}), but guardrail {guardrail} is "
                f"significantly worse.")
    if code == RecommendationCode.SAMPLE_RATIO_MISMATCH:
        return "Do not decide: visitors are not split as configured (sample ratio mismatch)."
    if code == RecommendationCode.KEEP_RUNNING:
        return f"Keep running: not enough data on {primary.metric} yet."
    if code == RecommendationCode.NO_DATA:
        return "No data yet."
    return f"No winner on {primary.metric} ({method}): nothing to ship."
