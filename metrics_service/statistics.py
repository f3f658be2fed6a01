"""Experiment statistics as plain functions of counts (no Flask, no database).

The distributions come from scipy.special (the normal, Beta and chi-square functions); the formulas
on top are a few lines each and are tested against statsmodels and scipy.stats, which compute the
same statistics. Those two are not imported here: statsmodels brings pandas and pyarrow, and
scipy.stats most of scipy, about 110 MB more in every metrics_service worker. The web layer only
formats.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import special

ALPHA = 0.05
SRM_THRESHOLD = 0.001
MIN_VISITORS = 100
MIN_CONVERSIONS = 25
# Mixing distribution of the always-valid test: theta ~ N(0, tau^2) with tau = MIXING_RELATIVE_EFFECT
# times the pooled rate (a 20% relative uplift), floored at half a percentage point. See README.
MIXING_RELATIVE_EFFECT = 0.2
MIXING_FLOOR = 0.005


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
    if not arm.visitors or not control.visitors:
        return None
    pooled = (arm.conversions + control.conversions) / (arm.visitors + control.visitors)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (arm.rate - control.rate) / math.sqrt(pooled * (1 - pooled) * (1 / arm.visitors + 1 / control.visitors))
    return float(2 * special.ndtr(-abs(z)))


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


def chance_to_beat(arm: Arm, control: Arm, points: int = 4001) -> float | None:
    """P(p_v > p_control) with Beta(1 + conversions, 1 + visitors - conversions) posteriors.

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
    value = simpson(density * below, grid[1] - grid[0])
    return float(min(max(value, 0.0), 1.0))


def simpson(values: np.ndarray, step: float) -> float:
    """Composite Simpson's rule over equally spaced values (an odd number of them)."""
    return float(step / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum() + 2 * values[2:-1:2].sum()))


def mixing_variance(pooled_rate: float) -> float:
    return max(MIXING_RELATIVE_EFFECT * pooled_rate, MIXING_FLOOR) ** 2


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
    return bool(arms) and all(a.visitors >= MIN_VISITORS and a.conversions >= MIN_CONVERSIONS for a in arms)


@dataclass(frozen=True)
class VariantResult:
    """One variant's readout; the comparisons with the control are None on the control itself."""

    variant: str
    visitors: int
    conversions: int
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
    significant: bool | None = None  # always-valid p-value below alpha (None on the control)


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


@dataclass(frozen=True)
class Readout:
    srm: SrmResult
    variants: list[VariantResult]  # the control first
    verdict: Verdict


def verdict(variants: Sequence[VariantResult], srm_mismatch: bool) -> Verdict:
    """No winner before every variant has MIN_VISITORS visitors and MIN_CONVERSIONS conversions;
    variants[0] is the control."""
    if srm_mismatch:
        return Verdict(VerdictCode.SAMPLE_RATIO_MISMATCH)
    if not enough_data(variants):
        smallest = min(variants, key=lambda v: (v.visitors, v.conversions)) if variants else None
        return Verdict(VerdictCode.NOT_ENOUGH_DATA, smallest)
    significant = [v for v in variants[1:] if v.significant]
    if not significant:
        return Verdict(VerdictCode.NO_DIFFERENCE)
    best = max(significant, key=lambda v: v.uplift if v.uplift is not None else -math.inf)
    return Verdict(VerdictCode.SIGNIFICANT, best)


def _described(arm: Arm, alpha: float) -> dict:
    low, high = wilson_interval(arm.conversions, arm.visitors, alpha)
    return {"variant": arm.variant, "visitors": arm.visitors, "conversions": arm.conversions, "rate": arm.rate,
            "ci_low": low, "ci_high": high}


def analyse(arms: Sequence[Arm], control: str, weights: dict[str, float], alpha: float = ALPHA) -> Readout:
    """The full readout of one metric: per-variant statistics against the control, SRM check, verdict."""
    by_name = {a.variant: a for a in arms}
    control_arm = by_name.get(control, Arm(control, 0, 0))
    others = [a for a in arms if a.variant != control]
    p_values = [z_test_p_value(arm, control_arm) for arm in others]
    variants = [VariantResult(**_described(control_arm, alpha))]
    for arm, p_value, adjusted in zip(others, p_values, holm_adjust(p_values), strict=True):
        uplift, low, high = relative_uplift(arm, control_arm, alpha)
        sequential = sequential_p_value(arm, control_arm)
        variants.append(VariantResult(
            **_described(arm, alpha), uplift=uplift, uplift_ci_low=low, uplift_ci_high=high,
            p_value=p_value, p_value_adjusted=adjusted, p_value_sequential=sequential,
            significant=None if sequential is None else sequential < alpha,
            chance_to_beat_control=chance_to_beat(arm, control_arm)))
    expected = {v.variant: weights.get(v.variant, 0.0) for v in variants}
    srm_p = srm_test([v.visitors for v in variants], list(expected.values()))
    srm = SrmResult(srm_p, srm_p is not None and srm_p < SRM_THRESHOLD, expected)
    return Readout(srm, variants, verdict(variants, srm.mismatch))
