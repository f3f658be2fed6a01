"""Statistics of mean metrics (events or value per exposed visitor) as plain functions of per-variant
sums (no Flask, no database).

Each arm is three numbers kept at ingest: visitors n, the sum of their per-visitor values and the
sum of their squares (as gbstats' SampleMeanStatistic), from which the mean and the sample variance
follow. Tested against scipy.stats and statsmodels, which are not imported here (see statistics.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

from metrics_service.sequential import GroupSequentialPlan
from metrics_service.statistics import (
    ALPHA,
    Comparison,
    Direction,
    Readout,
    VariantResult,
    better,
    build_readout,
    normal_quantile,
)

# Mixing distribution of the always-valid test for means: theta ~ N(0, tau^2) with tau a 20% relative
# change of the pooled mean, at least 5% of the pooled standard deviation (see README).
MIXING_RELATIVE_EFFECT = 0.2
MIXING_FLOOR_STD = 0.05


@dataclass(frozen=True)
class MeanArm:
    """One variant of a mean metric: visitors, and the sum and sum of squares of their per-visitor values."""

    name: str
    n: int
    total: float
    total_sq: float
    conversions: int | None = None  # visitors with at least one event of the metric, where known

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (n - 1 in the denominator); None below two visitors."""
        if self.n < 2:
            return None
        return max(0.0, (self.total_sq - self.total**2 / self.n) / (self.n - 1))

    @property
    def std(self) -> float | None:
        variance = self.variance
        return None if variance is None else math.sqrt(variance)


def _squared_error(arm: MeanArm) -> float:
    return arm.variance / arm.n


def mean_interval(arm: MeanArm, alpha: float = ALPHA) -> tuple[float | None, float | None]:
    """Student t interval of the mean (as scipy.stats.t.interval with n - 1 degrees of freedom)."""
    if arm.n < 2:
        return None, None
    half = float(special.stdtrit(arm.n - 1, 1 - alpha / 2)) * math.sqrt(_squared_error(arm))
    return arm.mean - half, arm.mean + half


def welch_statistic(arm: MeanArm, control: MeanArm) -> tuple[float, float] | None:
    """Welch's t of mean_v - mean_c and its Welch-Satterthwaite degrees of freedom; None below two
    visitors in an arm. With no variance in either arm: t = 0 for equal means, +-inf otherwise."""
    if arm.n < 2 or control.n < 2:
        return None
    var_v, var_c = _squared_error(arm), _squared_error(control)
    difference = arm.mean - control.mean
    if var_v + var_c == 0:
        return (0.0 if difference == 0 else math.copysign(math.inf, difference)), float(arm.n + control.n - 2)
    df = (var_v + var_c) ** 2 / (var_v**2 / (arm.n - 1) + var_c**2 / (control.n - 1))
    return difference / math.sqrt(var_v + var_c), df


def welch_test(arm: MeanArm, control: MeanArm) -> float | None:
    """Two-sided p-value of Welch's unequal-variances t-test (as scipy.stats.ttest_ind(equal_var=False))."""
    statistic = welch_statistic(arm, control)
    if statistic is None:
        return None
    t, df = statistic
    return float(2 * special.stdtr(df, -abs(t)))


def mean_uplift(arm: MeanArm, control: MeanArm,
                alpha: float = ALPHA) -> tuple[float | None, float | None, float | None]:
    """mean_v / mean_c - 1 with a delta-method interval; None where the control mean is zero."""
    if arm.n < 2 or control.n < 2 or not control.mean:
        return None, None, None
    m_v, m_c = arm.mean, control.mean
    ratio = m_v / m_c
    se = math.sqrt(_squared_error(arm) / m_c**2 + m_v**2 * _squared_error(control) / m_c**4)
    z = normal_quantile(1 - alpha / 2)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def mean_z_statistic(arm: MeanArm, control: MeanArm) -> float | None:
    """(mean_v - mean_c) / sqrt(s_v^2 / n_v + s_c^2 / n_c): Welch's t read on the normal scale."""
    statistic = welch_statistic(arm, control)
    return None if statistic is None else statistic[0]


def mixing_variance(arm: MeanArm, control: MeanArm) -> float:
    n = arm.n + control.n
    pooled_mean = (arm.total + control.total) / n
    pooled_std = math.sqrt(max(0.0, (arm.total_sq + control.total_sq) / n - pooled_mean**2))
    return max(MIXING_RELATIVE_EFFECT * abs(pooled_mean), MIXING_FLOOR_STD * pooled_std) ** 2


def mean_sequential_p_value(arm: MeanArm, control: MeanArm) -> float | None:
    """Always-valid p-value of a mixture SPRT for a difference of means (Johari et al.).

    theta_hat = mean_v - mean_c is approximately N(theta, V) with V = s_v^2 / n_v + s_c^2 / n_c; with
    theta ~ N(0, tau^2) the mixture likelihood ratio is sqrt(V / (V + tau^2)) *
    exp(theta_hat^2 tau^2 / (2 V (V + tau^2))), and 1 / ratio is valid at any stopping time.
    """
    if arm.n < 2 or control.n < 2:
        return None
    variance = _squared_error(arm) + _squared_error(control)
    theta = arm.mean - control.mean
    if variance == 0:
        return 1.0 if theta == 0 else 0.0
    tau2 = mixing_variance(arm, control)
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + theta**2 * tau2 / (2 * variance * (variance + tau2))
    return float(min(1.0, math.exp(-log_ratio)))


def mean_chance_to_beat(arm: MeanArm, control: MeanArm, direction: Direction = Direction.INCREASE) -> float | None:
    """P(mu_v > mu_c) (or < when lower is better) from the normal approximation
    mu_v - mu_c ~ N(mean_v - mean_c, s_v^2 / n_v + s_c^2 / n_c), as with flat priors."""
    z = mean_z_statistic(arm, control)
    if z is None:
        return None
    return float(special.ndtr(z if direction == Direction.INCREASE else -z))


def _described(arm: MeanArm, alpha: float) -> dict:
    low, high = mean_interval(arm, alpha)
    return {"variant": arm.name, "visitors": arm.n, "conversions": arm.conversions, "rate": None,
            "ci_low": low, "ci_high": high, "mean": arm.mean, "std": arm.std}


def _comparison(arm: MeanArm, control: MeanArm, alpha: float, direction: Direction) -> Comparison:
    uplift, low, high = mean_uplift(arm, control, alpha)
    z = mean_z_statistic(arm, control)
    return Comparison(VariantResult(
        **_described(arm, alpha), uplift=uplift, uplift_ci_low=low, uplift_ci_high=high,
        p_value=welch_test(arm, control), p_value_sequential=mean_sequential_p_value(arm, control),
        chance_to_beat_control=mean_chance_to_beat(arm, control, direction),
        better=None if z is None else better(arm.mean - control.mean, direction)), z, arm.n, control.n)


def analyse_means(arms: Sequence[MeanArm], control: str, weights: dict[str, float], alpha: float = ALPHA,
                  direction: Direction = Direction.INCREASE, plan: GroupSequentialPlan | None = None) -> Readout:
    """The full readout of one mean metric, in the shape of statistics.analyse: per-variant mean and
    interval, Welch p-value (Holm-adjusted across variants), uplift with its delta-method interval,
    always-valid p-value (or group-sequential with a plan), chance to beat control, SRM, verdict."""
    control_arm = next((a for a in arms if a.name == control), MeanArm(control, 0, 0.0, 0.0))
    comparisons = [_comparison(arm, control_arm, alpha, direction) for arm in arms if arm.name != control]
    return build_readout(VariantResult(**_described(control_arm, alpha)), comparisons, weights, alpha, direction, plan)
