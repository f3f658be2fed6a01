"""Planning an experiment: visitors needed per variant for a minimum detectable effect, and how long
that takes (no Flask, no database).

The sample sizes are those of statsmodels' power functions, which are not imported here (see
statistics.py): NormalIndPower with Cohen's h for two proportions, TTestIndPower with Cohen's d for
two means, both two-sided with equal arms, solved for the visitors per variant and rounded up.
"""
from __future__ import annotations

import math

from scipy import special

from metrics_service.sequential import find_root
from metrics_service.statistics import ALPHA

POWER = 0.8


def proportion_effect_size(baseline_rate: float, mde_relative: float) -> float:
    """Cohen's h between baseline_rate * (1 + mde_relative) and baseline_rate (statsmodels'
    proportion_effectsize)."""
    target = baseline_rate * (1 + mde_relative)
    if not 0 < baseline_rate < 1 or not 0 < target < 1:
        raise ValueError("the baseline rate and the rate it would move to must both lie strictly between 0 and 1")
    return 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline_rate))


def _normal_power(effect: float, n: float, alpha: float) -> float:
    crit = special.ndtri(1 - alpha / 2)
    shift = abs(effect) * math.sqrt(n / 2)
    return float(special.ndtr(shift - crit) + special.ndtr(-shift - crit))


def _t_power(effect: float, n: float, alpha: float) -> float:
    df = 2 * n - 2
    crit = special.stdtrit(df, 1 - alpha / 2)
    shift = abs(effect) * math.sqrt(n / 2)
    return float(1 - special.nctdtr(df, shift, crit) + special.nctdtr(df, shift, -crit))


def _solve(power_of_n, power: float, low: float) -> int:
    if not 0 < power < 1:
        raise ValueError("power must lie strictly between 0 and 1")
    high = max(2 * low, 4.0)
    while power_of_n(high) < power:
        high *= 2
    return math.ceil(find_root(lambda n: power_of_n(n) - power, low, high, xtol=1e-6))


def _check(effect: float, alpha: float) -> None:
    if effect == 0:
        raise ValueError("the minimum detectable effect must not be zero")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie strictly between 0 and 1")


def visitors_per_variant_proportion(baseline_rate: float, mde_relative: float, alpha: float = ALPHA,
                                    power: float = POWER) -> int:
    """Visitors per variant for a two-sided two-proportion test to detect a relative change of
    mde_relative from baseline_rate with the given power (NormalIndPower, Cohen's h, ratio 1)."""
    effect = proportion_effect_size(baseline_rate, mde_relative)
    _check(effect, alpha)
    return _solve(lambda n: _normal_power(effect, n, alpha), power, 1e-9)


def visitors_per_variant_mean(mean: float, std: float, mde_relative: float, alpha: float = ALPHA,
                              power: float = POWER) -> int:
    """Visitors per variant for a two-sided two-sample t-test to detect a relative change of
    mde_relative of the mean, with per-visitor standard deviation std (TTestIndPower, Cohen's
    d = mde_relative * mean / std, ratio 1)."""
    if not std > 0:
        raise ValueError("the standard deviation must be positive")
    effect = mde_relative * mean / std
    _check(effect, alpha)
    return _solve(lambda n: _t_power(effect, n, alpha), power, 1.5)


def expected_days(per_variant: int, variants: int, daily_visitors: float,
                  smallest_weight: float | None = None) -> float | None:
    """Days until every variant has per_variant visitors, at daily_visitors exposed visitors a day
    split evenly across the variants (or with smallest_weight the share of the smallest variant);
    None without daily visitors."""
    if daily_visitors <= 0 or variants <= 0:
        return None
    share = smallest_weight if smallest_weight is not None else 1 / variants
    if share <= 0:
        return None
    return per_variant / (daily_visitors * share)
