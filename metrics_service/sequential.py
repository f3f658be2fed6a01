"""Group-sequential testing for an experiment with a planned sample size (no Flask, no database).

An experiment that has a plan (visitors per variant, from planning.py) can be read with a
group-sequential test instead of the always-valid mSPRT: much more power at the planned horizon,
for the same protection against peeking. The error rate alpha is spent over the information
fraction t (information now / information at the plan) by the Lan-DeMets O'Brien-Fleming-like
spending function, so a look early on spends almost nothing and the last look at the plan tests at
nearly 1.96.

The boundary of look k is the z at which the chance, with no difference, of crossing at look k
without having crossed at an earlier look equals the alpha spent between looks k-1 and k. The
z-statistics at the looks are jointly normal with corr(Z_i, Z_j) = sqrt(t_i / t_j); that chance is
computed by recursive numerical integration over the score S = Z sqrt(t), whose increments are
independent (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19). The tests check it
against scipy's multivariate normal and against published boundaries.

Valid however often and whenever it is read: the boundaries hold for any look times chosen without
looking at the data, but each look spends alpha, so a reading must not become a look by itself.
The caller stores the looks actually taken (per experiment, metric and variant: a list of `Look`,
oldest first) and passes them in with every reading; `group_sequential_look` takes a new look only
once the information has grown by `MIN_LOOK_STEP` since the last one (or reached the plan), and
otherwise answers the decision of the last look taken. However many readings, there are at most
1 / MIN_LOOK_STEP + 1 looks, all of them accounted for. The caller appends `decision.new_look` to
its record when it is not None, and keeps the record for as long as the experiment runs.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import special

# A reading becomes a new look only when the information fraction has grown by this much since the
# last look (or has reached the plan): at most 11 looks, whatever the number of readings.
MIN_LOOK_STEP = 0.1
# Grid of the numerical integration: spacing at most this, and at most a quarter of the standard
# deviation of the score's increment between two looks (the integrand's narrowest feature).
GRID_STEP = 0.05
# Repeated p-values are reported down to this value (smaller ones are shown as it).
P_FLOOR = 1e-10


class SequentialMethod(StrEnum):
    MSPRT = "msprt"  # always-valid mixture SPRT: any number of readings, no plan needed
    GROUP_SEQUENTIAL = "group_sequential"  # Lan-DeMets alpha spending towards a planned sample size


@dataclass(frozen=True)
class Look:
    """One look taken: what the caller stores, oldest first, per experiment, metric and variant."""

    fraction: float  # information fraction t at the look (may exceed 1 past the plan)
    z: float  # the z-statistic of the variant against the control at the look
    p_value: float  # the look's repeated p-value (see group_sequential_look)


@dataclass(frozen=True)
class GroupSequentialPlan:
    """What a readout needs to use the group-sequential test: the planned visitors per variant and
    the looks recorded so far, per non-control variant."""

    per_variant: int
    looks: Mapping[str, Sequence[Look]] = field(default_factory=dict)


@dataclass(frozen=True)
class SequentialDecision:
    method: SequentialMethod
    p_value: float  # smallest repeated p-value over the looks: below alpha exactly when a boundary was crossed
    crossed: bool  # a look's |z| reached its boundary: the difference is significant (and stays so)
    fraction: float | None  # information fraction of the look the decision rests on (None: no look yet)
    z: float | None  # z at that look
    boundary: float | None  # |z| boundary at that look
    new_look: Look | None  # the look this reading took: the caller appends it to its record


def obf_spending(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Lan-DeMets O'Brien-Fleming-like spending of a two-sided level alpha, alpha / 2 on each side:
    alpha(t) = 4 - 4 Phi(z_{1-alpha/4} / sqrt(t)); 0 at t = 0, alpha from t = 1 on (as gsDesign's
    sfLDOF for a symmetric two-sided design)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        spent = 4 * special.ndtr(-special.ndtri(1 - alpha / 4) / np.sqrt(t))
    return float(spent) if spent.ndim == 0 else spent


def information_fraction(n_arm: int, n_control: int, per_variant: int) -> float:
    """Information of the difference between two arms (1 / (1/n_v + 1/n_c)) over its planned value
    (per_variant / 2): n / per_variant when both arms have n visitors."""
    if n_arm <= 0 or n_control <= 0 or per_variant <= 0:
        return 0.0
    return 2 / (per_variant * (1 / n_arm + 1 / n_control))


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.full(points, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return weights * step / 3


def _grid(half_width: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights over [-half_width, half_width], fine enough for an increment of sd."""
    step = min(GRID_STEP, sd / 4)
    intervals = max(2, 2 * math.ceil(half_width / step))
    points = np.linspace(-half_width, half_width, intervals + 1)
    return points, _simpson_weights(intervals + 1, points[1] - points[0])


def _solve_bound(cross: Callable[[float], float], target: float) -> float:
    """The score boundary b > 0 at which cross(b) (decreasing in b) equals target."""
    if target <= 0:
        return math.inf
    if cross(0.0) <= target:  # all that is left is spent here (a level near 1, up to rounding)
        return 0.0
    high = 1.0
    while cross(high) > target:
        high *= 2
    return find_root(lambda b: cross(b) - target, 0.0, high, xtol=1e-10)


def boundaries(fractions: Sequence[float], alpha: float) -> list[float]:
    """Two-sided |z| boundaries at looks taken at the given information fractions (increasing), spending
    obf_spending(t, alpha) by each look. A look after the plan has been reached spends nothing (inf)."""
    if any(t <= 0 for t in fractions[:1]) or any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
        raise ValueError("the looks' information fractions must be positive and increasing")
    spent = obf_spending(np.asarray(fractions, dtype=float), alpha)
    bounds: list[float] = []
    density = points = weights = None  # continuation density of the score at the previous look
    previous_t, previous_spent = 0.0, 0.0
    for t, total in zip(fractions, np.atleast_1d(spent), strict=True):
        sd = math.sqrt(t - previous_t)
        if density is None:
            def cross(b: float, sd: float = sd) -> float:
                return float(2 * special.ndtr(-b / sd))
        else:
            mass = density * weights

            def cross(b: float, sd: float = sd, mass: np.ndarray = mass, points: np.ndarray = points) -> float:
                return float(mass @ (special.ndtr((-b - points) / sd) + special.ndtr((points - b) / sd)))
        score_bound = _solve_bound(cross, float(total) - previous_spent)
        bounds.append(score_bound / math.sqrt(t))
        if math.isinf(score_bound):
            break  # nothing left to spend: no later look can reject
        # density of the score at this look on the continuation region, on the grid the next look needs
        next_t = fractions[len(bounds)] if len(bounds) < len(fractions) else None
        if next_t is not None:
            new_points, new_weights = _grid(score_bound, math.sqrt(next_t - t))
            if density is None:
                density = np.exp(-0.5 * (new_points / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            else:
                kernel = np.exp(-0.5 * ((new_points[:, None] - points[None, :]) / sd) ** 2)
                density = kernel @ mass / (sd * math.sqrt(2 * math.pi))
            points, weights = new_points, new_weights
        previous_t, previous_spent = t, float(total)
    return bounds + [math.inf] * (len(fractions) - len(bounds))


@lru_cache(maxsize=1024)
def _last_boundary(fractions: tuple[float, ...], alpha: float) -> float:
    """The boundary a recorded look had, for the readings between looks (which repeat it often)."""
    return boundaries(fractions, alpha)[-1]


def repeated_p_value(fractions: Sequence[float], z: float) -> float:
    """The smallest level a' at which |z| at the last of the looks reaches that look's boundary (with
    every boundary spent at level a'). The minimum of these over the looks is below alpha exactly when
    some look crossed its alpha boundary, and P(min <= a') <= a' under no difference, at any look."""
    def margin(log_level: float) -> float:
        return boundaries(fractions, math.exp(log_level))[-1] - abs(z)

    low, high = math.log(P_FLOOR), math.log(1 - 1e-9)
    if margin(low) <= 0:
        return P_FLOOR
    if margin(high) > 0:
        return 1.0
    return math.exp(find_root(margin, low, high, xtol=1e-6))


def group_sequential_look(looks: Sequence[Look], fraction: float, z: float | None, alpha: float,
                          min_step: float = MIN_LOOK_STEP) -> SequentialDecision:
    """The group-sequential decision at a reading with the current information fraction and z, given
    the looks taken so far (oldest first).

    The reading becomes a new look (returned in `new_look`, for the caller to record) when nothing
    has crossed yet, the plan's last look has not been taken, and the fraction has grown by
    `min_step` since the last look or has reached 1. Otherwise the decision of the looks already
    taken is returned unchanged; a crossed boundary stays crossed.
    """
    def decided(recorded: Sequence[Look], new_look: Look | None) -> SequentialDecision:
        if not recorded:
            return SequentialDecision(SequentialMethod.GROUP_SEQUENTIAL, 1.0, False, None, None, None, None)
        best = min(recorded, key=lambda look: look.p_value)
        crossed = best.p_value < alpha
        last = best if crossed else recorded[-1]
        bound = _last_boundary(tuple(look.fraction for look in recorded[: recorded.index(last) + 1]), alpha)
        return SequentialDecision(SequentialMethod.GROUP_SEQUENTIAL, best.p_value, crossed, last.fraction, last.z,
                                  bound, new_look)

    previous = looks[-1].fraction if looks else 0.0
    closed = bool(looks) and (previous >= 1 or min(look.p_value for look in looks) < alpha)
    due = fraction >= 1 or fraction - previous >= min_step - 1e-9  # 0.3 - 0.2 is 0.0999...98
    if z is None or closed or not due or fraction <= previous or not math.isfinite(z):
        return decided(looks, None)
    fractions = [look.fraction for look in looks] + [fraction]
    look = Look(fraction, z, repeated_p_value(fractions, z))
    return decided([*looks, look], look)


def find_root(function, low: float, high: float, xtol: float) -> float:
    """The root of a function that changes sign on [low, high] (scipy's brentq). `scipy.optimize` is
    imported when first needed: it loads scipy's linear algebra, sparse and spatial packages (about
    16 MB per worker), which only planning and group-sequential readouts use."""
    from scipy.optimize import brentq

    return brentq(function, low, high, xtol=xtol)
