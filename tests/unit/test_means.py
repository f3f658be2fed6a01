"""Mean-metric statistics against scipy.stats, statsmodels and numpy on generated per-visitor values."""
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from metrics_service.means import (
    MeanArm,
    analyse_means,
    mean_chance_to_beat,
    mean_interval,
    mean_sequential_p_value,
    mean_uplift,
    mean_z_statistic,
    mixing_variance,
    welch_test,
)
from metrics_service.sequential import GroupSequentialPlan, SequentialMethod, boundaries
from metrics_service.statistics import Direction, VerdictCode


def arm(name: str, values: np.ndarray) -> MeanArm:
    return MeanArm(name, len(values), float(values.sum()), float((values**2).sum()))


def order_values(rng: np.random.Generator, n: int, buy_rate: float = 0.05, log_mean: float = 3.5) -> np.ndarray:
    """Revenue per visitor: most visitors buy nothing, buyers spend a log-normal amount."""
    return (rng.random(n) < buy_rate) * rng.lognormal(log_mean, 1.2, n)


def datasets() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261130)
    return [
        (order_values(rng, 3000), order_values(rng, 3100, buy_rate=0.06)),  # skewed revenue
        (rng.poisson(1.3, 500).astype(float), rng.poisson(1.5, 480).astype(float)),  # events per visitor
        (rng.normal(10, 2, 40), rng.normal(11, 5, 25)),  # small, unequal variances
        (rng.lognormal(0, 2, 2000), rng.lognormal(0.1, 2, 1000)),  # heavy tail, unequal arms
        (rng.normal(-3, 1, 200), rng.normal(-3.2, 1, 200)),  # negative mean
    ]


@pytest.mark.parametrize("control,variant", datasets())
def test_means_variances_and_intervals_match_numpy_and_scipy(control, variant):
    for values in (control, variant):
        a = arm("A", values)
        assert a.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
        assert a.variance == pytest.approx(values.var(ddof=1), rel=1e-6)
        assert a.std == pytest.approx(values.std(ddof=1), rel=1e-6)
        reference = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert mean_interval(a) == pytest.approx(reference, rel=1e-6, abs=1e-9)
        assert mean_interval(a, 0.1) == pytest.approx(DescrStatsW(values).tconfint_mean(alpha=0.1), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("control,variant", datasets())
def test_welch_matches_scipy_and_statsmodels(control, variant):
    a, b = arm("A", control), arm("B", variant)
    reference = stats.ttest_ind(variant, control, equal_var=False)
    assert welch_test(b, a) == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)
    assert mean_z_statistic(b, a) == pytest.approx(reference.statistic, rel=1e-6)
    _, p_value, _ = CompareMeans(DescrStatsW(variant), DescrStatsW(control)).ttest_ind(usevar="unequal")
    assert welch_test(b, a) == pytest.approx(p_value, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("control,variant", datasets())
def test_uplift_delta_method_interval(control, variant):
    a, b = arm("A", control), arm("B", variant)
    uplift, low, high = mean_uplift(b, a)
    m_a, m_b = control.mean(), variant.mean()
    assert uplift == pytest.approx(m_b / m_a - 1, rel=1e-9)
    # delta method: gradient of m_b / m_a is (1/m_a, -m_b/m_a^2), the means independent
    grad = np.array([1 / m_a, -m_b / m_a**2])
    cov = np.diag([variant.var(ddof=1) / len(variant), control.var(ddof=1) / len(control)])
    se = math.sqrt(grad @ cov @ grad)
    z = stats.norm.ppf(0.975)
    assert (low, high) == pytest.approx((uplift - z * se, uplift + z * se), rel=1e-6)


def test_uplift_needs_a_control_mean():
    zero = MeanArm("A", 100, 0.0, 0.0)
    assert mean_uplift(MeanArm("B", 100, 5.0, 9.0), zero) == (None, None, None)
    assert mean_uplift(MeanArm("B", 1, 5.0, 25.0), MeanArm("A", 100, 5.0, 9.0)) == (None, None, None)


def test_degenerate_arms():
    assert MeanArm("A", 0, 0.0, 0.0).mean is None
    assert MeanArm("A", 1, 3.0, 9.0).variance is None
    assert mean_interval(MeanArm("A", 1, 3.0, 9.0)) == (None, None)
    assert welch_test(MeanArm("B", 1, 3.0, 9.0), MeanArm("A", 10, 3.0, 9.0)) is None
    constant = MeanArm("A", 10, 20.0, 40.0)  # every visitor 2.0: no variance
    assert welch_test(MeanArm("B", 10, 20.0, 40.0), constant) == 1.0
    assert welch_test(MeanArm("B", 10, 30.0, 90.0), constant) == 0.0
    assert mean_sequential_p_value(MeanArm("B", 10, 20.0, 40.0), constant) == 1.0
    assert mean_chance_to_beat(MeanArm("B", 1, 3.0, 9.0), constant) is None


@pytest.mark.parametrize("control,variant", datasets())
def test_chance_to_beat_is_the_normal_approximation(control, variant):
    a, b = arm("A", control), arm("B", variant)
    se = math.sqrt(variant.var(ddof=1) / len(variant) + control.var(ddof=1) / len(control))
    expected = stats.norm.cdf((variant.mean() - control.mean()) / se)
    assert mean_chance_to_beat(b, a) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert mean_chance_to_beat(b, a, Direction.DECREASE) == pytest.approx(1 - expected, rel=1e-6, abs=1e-12)


def test_sequential_p_value_formula():
    rng = np.random.default_rng(3)
    control, variant = order_values(rng, 4000), order_values(rng, 4000, buy_rate=0.065)
    a, b = arm("A", control), arm("B", variant)
    v = variant.var(ddof=1) / 4000 + control.var(ddof=1) / 4000
    pooled = np.concatenate([control, variant])
    tau2 = max(0.2 * pooled.mean(), 0.05 * pooled.std()) ** 2
    assert mixing_variance(b, a) == pytest.approx(tau2, rel=1e-9)
    theta = variant.mean() - control.mean()
    ratio = math.sqrt(v / (v + tau2)) * math.exp(theta**2 * tau2 / (2 * v * (v + tau2)))
    assert mean_sequential_p_value(b, a) == pytest.approx(min(1.0, 1 / ratio), rel=1e-9)
    assert mean_sequential_p_value(b, a) > welch_test(b, a)  # the price of peeking


def test_sequential_p_value_controls_error_under_peeking_with_skewed_values():
    """A/A with log-normal order values: an analyst reads after every batch of 250 visitors per arm,
    40 times, and stops at the first p < 0.05."""
    rng = np.random.default_rng(20261130)
    experiments, batches, batch = 300, 40, 250
    values = order_values(rng, experiments * batches * batch * 2).reshape(experiments, batches, 2, batch)
    totals, squares = values.sum(axis=3).cumsum(axis=1), (values**2).sum(axis=3).cumsum(axis=1)
    naive_hits = sequential_hits = 0
    for e in range(experiments):
        naive = sequential = False
        for step in range(batches):
            n = batch * (step + 1)
            a = MeanArm("A", n, totals[e, step, 0], squares[e, step, 0])
            b = MeanArm("B", n, totals[e, step, 1], squares[e, step, 1])
            naive = naive or welch_test(b, a) < 0.05
            sequential = sequential or mean_sequential_p_value(b, a) < 0.05
        naive_hits += naive
        sequential_hits += sequential
    assert sequential_hits / experiments <= 0.05
    assert naive_hits / experiments > 0.15  # peeking at the fixed-horizon test is badly wrong


def test_sequential_p_value_finds_a_real_effect_in_revenue():
    rng = np.random.default_rng(11)
    a, b = arm("A", order_values(rng, 40_000)), arm("B", order_values(rng, 40_000, buy_rate=0.07))
    assert mean_sequential_p_value(b, a) < 0.01


def test_analyse_means_three_variants():
    rng = np.random.default_rng(5)
    values = {"A": order_values(rng, 10_000), "B": order_values(rng, 10_000, buy_rate=0.08),
              "C": order_values(rng, 10_000, buy_rate=0.048)}
    result = analyse_means([arm(name, v) for name, v in values.items()], "A", {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
    rows = {r.variant: r for r in result.variants}
    assert [r.variant for r in result.variants] == ["A", "B", "C"]
    assert rows["A"].uplift is None and rows["A"].p_value is None and rows["A"].significant is None
    assert rows["A"].mean == pytest.approx(values["A"].mean()) and rows["A"].rate is None
    assert rows["A"].std == pytest.approx(values["A"].std(ddof=1))
    raw = [rows["B"].p_value, rows["C"].p_value]
    assert raw == pytest.approx([stats.ttest_ind(values[k], values["A"], equal_var=False).pvalue for k in "BC"])
    assert [rows["B"].p_value_adjusted, rows["C"].p_value_adjusted] == pytest.approx(
        list(multipletests(raw, method="holm")[1]))
    assert rows["B"].significant and rows["B"].better is True and rows["B"].chance_to_beat_control > 0.99
    assert result.verdict.code == VerdictCode.SIGNIFICANT and result.verdict.variant == rows["B"]
    assert result.verdict.method == SequentialMethod.MSPRT
    assert result.srm.mismatch is False and result.new_looks == {}


def test_lower_is_better_turns_the_verdict():
    """Errors per visitor: the variant with fewer is the better one, and chance to beat counts that way."""
    rng = np.random.default_rng(8)
    a = arm("A", rng.poisson(0.5, 8000).astype(float))
    fewer = arm("B", rng.poisson(0.42, 8000).astype(float))
    more = arm("C", rng.poisson(0.6, 8000).astype(float))
    weights = {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}
    lower = analyse_means([a, fewer, more], "A", weights, direction=Direction.DECREASE)
    rows = {r.variant: r for r in lower.variants}
    assert rows["B"].significant and rows["C"].significant
    assert rows["B"].better is True and rows["C"].better is False
    assert rows["B"].chance_to_beat_control > 0.99 and rows["C"].chance_to_beat_control < 0.01
    assert lower.verdict.variant.variant == "B"
    higher = analyse_means([a, fewer, more], "A", weights)
    assert higher.verdict.variant.variant == "C" and higher.variants[2].better is True


def test_not_enough_data_counts_visitors_and_known_conversions():
    rng = np.random.default_rng(9)
    small = analyse_means([arm("A", order_values(rng, 99)), arm("B", order_values(rng, 150))], "A", {"A": .5, "B": .5})
    assert small.verdict.code == VerdictCode.NOT_ENOUGH_DATA and small.verdict.variant.variant == "A"
    few_buyers = [MeanArm("A", 5000, 900.0, 90_000.0, conversions=10), MeanArm("B", 5000, 3000.0, 300_000.0, 30)]
    assert analyse_means(few_buyers, "A", {"A": .5, "B": .5}).verdict.code == VerdictCode.NOT_ENOUGH_DATA


def test_analyse_means_with_no_data():
    result = analyse_means([], "A", {"A": 0.5, "B": 0.5})
    assert (result.variants[0].variant, result.variants[0].visitors, result.variants[0].mean) == ("A", 0, None)
    assert result.verdict.code == VerdictCode.NOT_ENOUGH_DATA


def test_a_plan_makes_the_readout_group_sequential():
    rng = np.random.default_rng(12)
    a, b = arm("A", order_values(rng, 6000)), arm("B", order_values(rng, 6000, buy_rate=0.065))
    weights = {"A": 0.5, "B": 0.5}
    first = analyse_means([a, b], "A", weights, plan=GroupSequentialPlan(per_variant=6000))
    look = first.new_looks["B"]
    assert first.verdict.method == SequentialMethod.GROUP_SEQUENTIAL
    assert (look.fraction, look.z) == pytest.approx((1.0, mean_z_statistic(b, a)))
    # one look at the plan: the boundary is the fixed-horizon test's, so the decision is Welch's at 5%
    assert first.variants[1].significant == (abs(look.z) >= stats.norm.ppf(0.975))
    assert first.variants[1].p_value_sequential == pytest.approx(2 * stats.norm.sf(abs(look.z)), rel=1e-4)
    again = analyse_means([a, b], "A", weights, plan=GroupSequentialPlan(6000, {"B": [look]}))
    assert again.new_looks == {} and again.variants[1].p_value_sequential == first.variants[1].p_value_sequential


def test_group_sequential_on_skewed_revenue_keeps_the_level():
    """A/A with log-normal order values, 1,000 visitors per arm planned, a look every 10% of the plan:
    the Welch z at the looks is close enough to normal for the boundaries."""
    rng = np.random.default_rng(17)
    experiments, looks, batch = 4000, 10, 100
    values = order_values(rng, experiments * looks * 2 * batch).reshape(experiments, looks, 2, batch)
    totals, squares = values.sum(axis=3).cumsum(axis=1), (values**2).sum(axis=3).cumsum(axis=1)
    bounds = boundaries([0.1 * k for k in range(1, looks + 1)], 0.05)
    hits = 0
    for e in range(experiments):
        for k in range(looks):
            n = batch * (k + 1)
            z = mean_z_statistic(MeanArm("B", n, totals[e, k, 1], squares[e, k, 1]),
                                 MeanArm("A", n, totals[e, k, 0], squares[e, k, 0]))
            if abs(z) >= bounds[k]:
                hits += 1
                break
    assert hits / experiments <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / experiments)
