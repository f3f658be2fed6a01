"""Experiment statistics as plain functions of counts (no Flask, no database).

Well-kept libraries do the distributions: statsmodels for proportions and multiple testing,
scipy for the Beta posteriors and the chi-square test. The web layer only formats.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

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


def wilson_interval(conversions: int, visitors: int, alpha: float = ALPHA) -> tuple[float | None, float | None]:
    """Wilson score interval of a rate; (None, None) with no visitors."""
    if visitors <= 0:
        return None, None
    low, high = proportion_confint(conversions, visitors, alpha=alpha, method="wilson")
    rate = conversions / visitors
    # clamp away floating-point noise at the edges (0/n, n/n)
    return max(0.0, min(float(low), rate)), min(1.0, max(float(high), rate))


def relative_uplift(arm: Arm, control: Arm, alpha: float = ALPHA) -> tuple[float | None, float | None, float | None]:
    """rate_v / rate_control - 1 with a delta-method interval; None where the control rate is zero."""
    if not arm.visitors or not control.visitors or not control.conversions:
        return None, None, None
    p_v, p_c = arm.rate, control.rate
    ratio = p_v / p_c
    var_v = p_v * (1 - p_v) / arm.visitors
    var_c = p_c * (1 - p_c) / control.visitors
    se = math.sqrt(var_v / p_c**2 + (p_v**2) * var_c / p_c**4)
    z = stats.norm.ppf(1 - alpha / 2)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def z_test_p_value(arm: Arm, control: Arm) -> float | None:
    """Two-sided pooled two-proportion z-test; 1.0 when both rates sit at 0 or 1 together."""
    if not arm.visitors or not control.visitors:
        return None
    pooled = (arm.conversions + control.conversions) / (arm.visitors + control.visitors)
    if pooled in (0.0, 1.0):
        return 1.0
    _, p_value = proportions_ztest([arm.conversions, control.conversions], [arm.visitors, control.visitors])
    return float(p_value)


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
    post_v = stats.beta(1 + arm.conversions, 1 + arm.visitors - arm.conversions)
    post_c = stats.beta(1 + control.conversions, 1 + control.visitors - control.conversions)
    grid = np.linspace(post_v.ppf(1e-12), post_v.isf(1e-12), points)
    value = integrate.simpson(post_v.pdf(grid) * post_c.cdf(grid), x=grid)
    return float(min(max(value, 0.0), 1.0))


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
    """Pearson chi-square p-value of visitors per variant against the expected weights."""
    total = sum(visitors)
    if total == 0 or len(visitors) < 2:
        return None
    expected = np.asarray(weights, dtype=float) / sum(weights) * total
    _, p_value = stats.chisquare(np.asarray(visitors, dtype=float), f_exp=expected)
    return float(p_value)


def enough_data(arms: Sequence[Arm]) -> bool:
    return bool(arms) and all(a.visitors >= MIN_VISITORS and a.conversions >= MIN_CONVERSIONS for a in arms)


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def verdict(metric: str, control: Arm, rows: Sequence[dict], srm_mismatch: bool, arms: Sequence[Arm]) -> str:
    """One plain sentence; no winner before every arm has MIN_VISITORS visitors and MIN_CONVERSIONS conversions."""
    if srm_mismatch:
        return ("Sample ratio mismatch: visitors are not split as configured, so these results cannot be "
                "trusted until the cause is fixed.")
    if not enough_data(arms):
        smallest = min(arms, key=lambda a: (a.visitors, a.conversions)) if arms else None
        have = f" (smallest: {smallest.variant} with {smallest.visitors} visitors, {smallest.conversions} " \
               f"conversions)" if smallest else ""
        return (f"Not enough data yet: every variant needs at least {MIN_VISITORS} visitors and "
                f"{MIN_CONVERSIONS} {metric} conversions before a winner can be called{have}.")
    significant = [r for r in rows if r["p_value_sequential"] is not None and r["p_value_sequential"] < ALPHA]
    if not significant:
        return (f"No significant difference from {control.variant} on {metric} yet "
                f"(always-valid p ≥ {ALPHA}); keep the experiment running or accept no effect.")
    best = max(significant, key=lambda r: r["uplift"] if r["uplift"] is not None else -math.inf)
    direction = "beats" if (best["uplift"] or 0) > 0 else "is worse than"
    interval = ""
    if best["uplift_ci_low"] is not None:
        interval = f" (95% CI {_pct(best['uplift_ci_low'])} to {_pct(best['uplift_ci_high'])})"
    uplift = _pct(best["uplift"]) if best["uplift"] is not None else "n/a"
    return (f"{best['variant']} {direction} {control.variant} on {metric}: {uplift}{interval}, "
            f"always-valid p = {best['p_value_sequential']:.3g}.")


def analyse(arms: Sequence[Arm], control: str, weights: dict[str, float], metric: str) -> dict:
    """The full readout of one metric: per-variant statistics, SRM check and verdict."""
    by_name = {a.variant: a for a in arms}
    control_arm = by_name.get(control, Arm(control, 0, 0))
    ordered = [control_arm] + [a for a in arms if a.variant != control]
    rows = []
    for arm in ordered:
        low, high = wilson_interval(arm.conversions, arm.visitors)
        row = {"variant": arm.variant, "visitors": arm.visitors, "conversions": arm.conversions,
               "rate": arm.rate, "ci_low": low, "ci_high": high,
               "uplift": None, "uplift_ci_low": None, "uplift_ci_high": None,
               "p_value": None, "p_value_adjusted": None, "p_value_sequential": None,
               "chance_to_beat_control": None}
        if arm is not control_arm:
            row["uplift"], row["uplift_ci_low"], row["uplift_ci_high"] = relative_uplift(arm, control_arm)
            row["p_value"] = z_test_p_value(arm, control_arm)
            row["p_value_sequential"] = sequential_p_value(arm, control_arm)
            row["chance_to_beat_control"] = chance_to_beat(arm, control_arm)
        rows.append(row)
    adjusted = holm_adjust([r["p_value"] for r in rows[1:]])
    for row, value in zip(rows[1:], adjusted, strict=True):
        row["p_value_adjusted"] = value
    expected = {v: weights.get(v, 0.0) for v in (a.variant for a in ordered)}
    srm_p = srm_test([a.visitors for a in ordered], [expected[a.variant] for a in ordered])
    mismatch = srm_p is not None and srm_p < SRM_THRESHOLD
    return {
        "srm": {"p_value": srm_p, "mismatch": mismatch, "expected_weights": expected},
        "variants": rows,
        "verdict": verdict(metric, control_arm, rows[1:], mismatch, ordered),
    }
