"""Experiment statistics as plain functions of counts (no Flask, no database).

The distributions come from scipy.special (the normal, Beta and chi-square functions); the formulas
on top are a few lines each and are tested against statsmodels and scipy.stats, which compute the
same statistics. Those two are not imported here: statsmodels brings pandas and pyarrow, and
scipy.stats most of scipy, about 110 MB more in every metrics_service worker. The web layer only
formats.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from scipy import special

from metrics_service.sequential import (
    GroupSequentialPlan,
    Look,
    SequentialMethod,
    group_sequential_look,
    information_fraction,
)

ALPHA = 0.05
SRM_THRESHOLD = 0.001
MIN_VISITORS = 100
MIN_CONVERSIONS = 25
# Mixing distribution of the always-valid test: theta ~ N(0, tau^2) with tau = MIXING_RELATIVE_EFFECT
# times the pooled rate (a 20% relative uplift), floored at half a percentage point. See README.
MIXING_RELATIVE_EFFECT = 0.2
MIXING_FLOOR = 0.005


class Direction(StrEnum):
    INCREASE = "increase"  # higher is better (conversions, revenue)
    DECREASE = "decrease"  # lower is better (errors, refunds, load time)


@dataclass(frozen=True)
class Arm:
    variant: str
    visitors: int
    conversions: int

    @property
    def rate(self) -> float | None:
        return self.conversions / self.visitors if self.visitors else None


def normal_quantile(q: float) -> float:
    return float(special.ndtri(q))


def wilson_interval(conversions: int, visitors: int, alpha: float = ALPHA) -> tuple[float | None, float | None]:
    """Wilson score interval of a rate (as statsmodels' proportion_confint(method="wilson")); (None,
    None) with no visitors."""
    if visitors <= 0:
        return None, None
    rate = conversions / visitors
    z2 = normal_quantile(1 - alpha / 2) ** 2
    scale = 1 + z2 / visitors
    centre = (rate + z2 / (2 * visitors)) / scale
    half = math.sqrt(z2 * (rate * (1 - rate) / visitors + z2 / (4 * visitors**2))) / scale
    # clamp away floating-point noise at the edges (0/n, n/n)
    return max(0.0, min(centre - half, rate)), min(1.0, max(centre + half, rate))


def relative_uplift(arm: Arm, control: Arm, alpha: float = ALPHA) -> tuple[float | None, float | None, float | None]:
    """rate_v / rate_control - 1 with a delta-method interval; None where the control rate is zero."""
    if not arm.visitors or not control.visitors or not control.conversions:
        return None, None, None
    p_v, p_c = arm.rate, control.rate
    ratio = p_v / p_c
    var_v = p_v * (1 - p_v) / arm.visitors
    var_c = p_c * (1 - p_c) / control.visitors
    se = math.sqrt(var_v / p_c**2 + (p_v**2) * var_c / p_c**4)
    z = normal_quantile(1 - alpha / 2)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def z_test_p_value(arm: Arm, control: Arm) -> float | None:
    """Two-sided pooled two-proportion z-test (as statsmodels' proportions_ztest); 1.0 when both rates
    sit at 0 or 1 together."""
    z = z_statistic(arm, control)
    return None if z is None else float(2 * special.ndtr(-abs(z)))


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni across the given p-values; None entries stay None and are not counted.

    Written out (and tested against statsmodels' multipletests) because multipletests runs a full
    garbage collection on every call, which cost 15-40 ms per results request.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (as statsmodels' multipletests(method="fdr_bh")): the
    smallest false discovery rate at which each would be rejected. None entries stay None and are not
    counted.

    References: Benjamini, Y. and Hochberg, Y. (1995), "Controlling the false discovery rate", JRSS B 57.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 1.0
    for rank in range(len(present), 0, -1):
        p, i = present[rank - 1]
        running = min(running, p * len(present) / rank)
        adjusted[i] = running
    return adjusted


def chance_to_beat(arm: Arm, control: Arm, points: int = 4001,
                   direction: Direction = Direction.INCREASE) -> float | None:
    """P(p_v > p_control) with Beta(1 + conversions, 1 + visitors - conversions) posteriors
    (P(p_v < p_control) when lower is better).

    The integral of f_v(x) * F_control(x) is taken with Simpson's rule on a fine grid spanning the
    variant posterior's support (to 1e-12 in each tail): accurate to far better than 0.001, in about
    a millisecond whatever the counts.
    """
    if not arm.visitors or not control.visitors:
        return None
    a, b = 1 + arm.conversions, 1 + arm.visitors - arm.conversions
    grid = np.linspace(special.betaincinv(a, b, 1e-12), special.betainccinv(a, b, 1e-12), points)
    density = np.exp(special.xlogy(a - 1, grid) + special.xlog1py(b - 1, -grid) - special.betaln(a, b))
    below = special.betainc(1 + control.conversions, 1 + control.visitors - control.conversions, grid)
    value = min(max(simpson(density * below, grid[1] - grid[0]), 0.0), 1.0)
    return float(value if direction == Direction.INCREASE else 1.0 - value)


def simpson(values: np.ndarray, step: float) -> float:
    """Composite Simpson's rule over equally spaced values (an odd number of them)."""
    return float(step / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum() + 2 * values[2:-1:2].sum()))


def mixing_variance(pooled_rate: float) -> float:
    return max(MIXING_RELATIVE_EFFECT * pooled_rate, MIXING_FLOOR) ** 2


def z_statistic(arm: Arm, control: Arm) -> float | None:
    """The pooled two-proportion z of z_test_p_value (0 when both rates sit at 0 or 1 together)."""
    if not arm.visitors or not control.visitors:
        return None
    pooled = (arm.conversions + control.conversions) / (arm.visitors + control.visitors)
    if pooled in (0.0, 1.0):
        return 0.0
    return (arm.rate - control.rate) / math.sqrt(pooled * (1 - pooled) * (1 / arm.visitors + 1 / control.visitors))


def sequential_p_value(arm: Arm, control: Arm) -> float | None:
    """Always-valid p-value of a mixture SPRT (Johari et al., "Peeking at A/B tests").

    With theta_hat = p_v - p_c and V = pooled variance of theta_hat, the mixture likelihood ratio
    under theta ~ N(0, tau^2) is sqrt(V / (V + tau^2)) * exp(theta_hat^2 tau^2 / (2 V (V + tau^2))).
    It is a martingale under the null, so 1 / ratio is a p-value valid at any stopping time.
    """
    if not arm.visitors or not control.visitors:
        return None
    pooled = (arm.conversions + control.conversions) / (arm.visitors + control.visitors)
    if pooled in (0.0, 1.0):
        return 1.0
    variance = pooled * (1 - pooled) * (1 / arm.visitors + 1 / control.visitors)
    tau2 = mixing_variance(pooled)
    theta = arm.rate - control.rate
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + theta**2 * tau2 / (2 * variance * (variance + tau2))
    return float(min(1.0, math.exp(-log_ratio)))


def srm_test(visitors: Sequence[int], weights: Sequence[float]) -> float | None:
    """Pearson chi-square p-value of visitors per variant against the expected weights (as scipy's
    chisquare). A variant expected at weight 0 takes no part, unless it has visitors: then the split
    is certainly not as configured (0). None without visitors or without two variants to compare."""
    observed, weight = np.asarray(visitors, dtype=float), np.asarray(weights, dtype=float)
    if (observed[weight == 0] > 0).any():
        return 0.0
    observed, weight = observed[weight > 0], weight[weight > 0]
    total = observed.sum()
    if total == 0 or len(observed) < 2:
        return None
    expected = weight / weight.sum() * total
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(special.chdtrc(len(observed) - 1, statistic))


def enough_data(arms: Sequence[Arm | VariantResult]) -> bool:
    """Every arm has MIN_VISITORS visitors and MIN_CONVERSIONS visitors with the event (where known)."""
    return bool(arms) and all(
        a.visitors >= MIN_VISITORS and (a.conversions is None or a.conversions >= MIN_CONVERSIONS) for a in arms)


@dataclass(frozen=True)
class VariantResult:
    """One variant's readout; the comparisons with the control are None on the control itself.

    For a conversion metric `rate` is the share of visitors with the event and `ci_*` its interval;
    for a mean metric (count or value per visitor) `rate` is None, `mean` and `std` describe the
    per-visitor values and `ci_*` is the interval of the mean, and `conversions` (visitors with at
    least one event) may be unknown (None)."""

    variant: str
    visitors: int
    conversions: int | None
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    uplift: float | None = None
    uplift_ci_low: float | None = None
    uplift_ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    p_value_sequential: float | None = None
    chance_to_beat_control: float | None = None
    significant: bool | None = None  # p_value_sequential below alpha, mSPRT or group-sequential (None on the control)
    mean: float | None = None  # mean metrics: mean per visitor
    std: float | None = None  # mean metrics: sample standard deviation per visitor
    better: bool | None = None  # moved the metric the good way for its direction (None: control, or no difference)
    information_fraction: float | None = None  # group-sequential readouts: information now / at the plan


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    mismatch: bool
    expected_weights: dict[str, float]


class VerdictCode(StrEnum):
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"  # visitors are not split as configured
    NOT_ENOUGH_DATA = "not_enough_data"  # some variant below MIN_VISITORS or MIN_CONVERSIONS
    NO_DIFFERENCE = "no_difference"  # no always-valid p-value below alpha
    SIGNIFICANT = "significant"  # `variant` differs from the control: the largest uplift among the significant


@dataclass(frozen=True)
class Verdict:
    """What the readout allows to say, as a code and the variant it is about (the significant one, or
    the one furthest from enough data); the words are written where the answer is built."""

    code: VerdictCode
    variant: VariantResult | None = None
    method: SequentialMethod = SequentialMethod.MSPRT  # the test behind `significant`


@dataclass(frozen=True)
class Readout:
    srm: SrmResult
    variants: list[VariantResult]  # the control first
    verdict: Verdict
    # group-sequential readouts: the looks this reading took, per variant; the caller appends each to
    # its record of that variant's looks (see sequential.py)
    new_looks: dict[str, Look] = field(default_factory=dict)


def verdict(variants: Sequence[VariantResult], srm_mismatch: bool, direction: Direction = Direction.INCREASE,
            method: SequentialMethod = SequentialMethod.MSPRT) -> Verdict:
    """No winner before every variant has MIN_VISITORS visitors and MIN_CONVERSIONS conversions;
    variants[0] is the control. Among the significant variants, the best for the direction (the
    largest uplift, or the smallest when lower is better)."""
    if srm_mismatch:
        return Verdict(VerdictCode.SAMPLE_RATIO_MISMATCH, method=method)
    if not enough_data(variants):
        smallest = min(variants, key=lambda v: (v.visitors, v.conversions or 0)) if variants else None
        return Verdict(VerdictCode.NOT_ENOUGH_DATA, smallest, method=method)
    significant = [v for v in variants[1:] if v.significant]
    if not significant:
        return Verdict(VerdictCode.NO_DIFFERENCE, method=method)
    sign = 1 if direction == Direction.INCREASE else -1
    best = max(significant, key=lambda v: sign * v.uplift if v.uplift is not None else -math.inf)
    return Verdict(VerdictCode.SIGNIFICANT, best, method=method)


def better(difference: float | None, direction: Direction) -> bool | None:
    """Whether a variant-minus-control difference is an improvement; None without one or at zero."""
    if difference is None or difference == 0:
        return None
    return bool(difference > 0) == (direction == Direction.INCREASE)


@dataclass(frozen=True)
class Comparison:
    """A non-control variant's readout before the comparisons across variants, with what the
    group-sequential test needs."""

    result: VariantResult  # p_value_adjusted and significant not yet set
    z: float | None  # its test statistic against the control
    visitors: int
    control_visitors: int


def build_readout(control: VariantResult, comparisons: Sequence[Comparison], weights: dict[str, float], alpha: float,
                  direction: Direction = Direction.INCREASE, plan: GroupSequentialPlan | None = None) -> Readout:
    """Holm adjustment, significance (by mSPRT, or group-sequential with a plan), SRM check and
    verdict: the part of a readout shared by conversion and mean metrics."""
    adjusted = holm_adjust([c.result.p_value for c in comparisons])
    variants, new_looks = [control], {}
    for comparison, p_adjusted in zip(comparisons, adjusted, strict=True):
        result = replace(comparison.result, p_value_adjusted=p_adjusted)
        if plan is None:
            sequential = result.p_value_sequential
            result = replace(result, significant=None if sequential is None else sequential < alpha)
        else:
            fraction = information_fraction(comparison.visitors, comparison.control_visitors, plan.per_variant)
            decision = group_sequential_look(plan.looks.get(result.variant, ()), fraction, comparison.z, alpha)
            if decision.new_look is not None:
                new_looks[result.variant] = decision.new_look
            result = replace(result, p_value_sequential=decision.p_value, significant=decision.crossed,
                             information_fraction=fraction)
        variants.append(result)
    expected = {v.variant: weights.get(v.variant, 0.0) for v in variants}
    srm_p = srm_test([v.visitors for v in variants], list(expected.values()))
    srm = SrmResult(srm_p, srm_p is not None and srm_p < SRM_THRESHOLD, expected)
    method = SequentialMethod.MSPRT if plan is None else SequentialMethod.GROUP_SEQUENTIAL
    return Readout(srm, variants, verdict(variants, srm.mismatch, direction, method), new_looks)


def _described(arm: Arm, alpha: float) -> dict:
    low, high = wilson_interval(arm.conversions, arm.visitors, alpha)
    return {"variant": arm.variant, "visitors": arm.visitors, "conversions": arm.conversions, "rate": arm.rate,
            "ci_low": low, "ci_high": high}


def _comparison(arm: Arm, control: Arm, alpha: float, direction: Direction) -> Comparison:
    uplift, low, high = relative_uplift(arm, control, alpha)
    z = z_statistic(arm, control)
    return Comparison(VariantResult(
        **_described(arm, alpha), uplift=uplift, uplift_ci_low=low, uplift_ci_high=high,
        p_value=z_test_p_value(arm, control), p_value_sequential=sequential_p_value(arm, control),
        chance_to_beat_control=chance_to_beat(arm, control, direction=direction),
        better=None if z is None else better(arm.rate - control.rate, direction)), z, arm.visitors, control.visitors)


def analyse(arms: Sequence[Arm], control: str, weights: dict[str, float], alpha: float = ALPHA,
            direction: Direction = Direction.INCREASE, plan: GroupSequentialPlan | None = None) -> Readout:
    """The full readout of one conversion metric: per-variant statistics against the control, SRM
    check, verdict. With a plan, significance is group-sequential (see sequential.py) instead of mSPRT."""
    control_arm = next((a for a in arms if a.variant == control), Arm(control, 0, 0))
    comparisons = [_comparison(arm, control_arm, alpha, direction) for arm in arms if arm.variant != control]
    return build_readout(VariantResult(**_described(control_arm, alpha)), comparisons, weights, alpha, direction, plan)


SEGMENT_ADJUSTMENT = "benjamini-hochberg"  # how segment p-values are adjusted for their number


@dataclass(frozen=True)
class SegmentResult:
    """One segment's readout (variants: the control first). A segment where some variant has fewer than
    MIN_VISITORS visitors or MIN_CONVERSIONS conversions is not judged: no adjusted p-value. Here a
    variant's `significant` means its Benjamini-Hochberg adjusted z-test p-value is below alpha."""

    value: str
    visitors: int
    conversions: int
    judged: bool
    variants: list[VariantResult]


def segment_results(segments: Mapping[str, Sequence[Arm]], control: str, alpha: float = ALPHA) -> list[SegmentResult]:
    """Per segment, each variant against the control (rate, uplift and interval, z-test p-value); the
    p-values of the judged segments adjusted together (Benjamini-Hochberg), `significant` where the
    adjusted p-value is below alpha. Largest segments first (pure)."""
    readouts = []
    for value, arms in segments.items():
        control_arm = next((a for a in arms if a.variant == control), Arm(control, 0, 0))
        variants = [VariantResult(**_described(control_arm, alpha))]
        for arm in sorted((a for a in arms if a.variant != control), key=lambda a: a.variant):
            uplift, low, high = relative_uplift(arm, control_arm, alpha)
            variants.append(VariantResult(**_described(arm, alpha), uplift=uplift, uplift_ci_low=low,
                                          uplift_ci_high=high, p_value=z_test_p_value(arm, control_arm)))
        readouts.append(SegmentResult(value, sum(v.visitors for v in variants), sum(v.conversions for v in variants),
                                      enough_data(variants), variants))
    family = [(s, i) for s, readout in enumerate(readouts) if readout.judged
              for i, v in enumerate(readout.variants) if i and v.p_value is not None]
    adjusted = benjamini_hochberg([readouts[s].variants[i].p_value for s, i in family])
    for (s, i), p in zip(family, adjusted, strict=True):
        readouts[s].variants[i] = replace(readouts[s].variants[i], p_value_adjusted=p, significant=p < alpha)
    return sorted(readouts, key=lambda r: (-r.visitors, r.value))
