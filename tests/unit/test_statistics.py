"""Every statistic against references computed here with statsmodels, scipy and numpy."""
import math

import numpy as np
import pytest
from scipy import special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from metrics_service.sequential import GroupSequentialPlan, Look, SequentialMethod, boundaries
from metrics_service.statistics import (
    Arm,
    Direction,
    Verdict,
    VerdictCode,
    analyse,
    chance_to_beat,
    holm_adjust,
    relative_uplift,
    sequential_p_value,
    srm_test,
    wilson_interval,
    z_statistic,
    z_test_p_value,
)

DATASETS = [
    # (control visitors, conversions), (variant visitors, conversions)
    ((1000, 100), (1000, 130)),
    ((20, 3), (25, 1)),  # small counts
    ((5000, 480), (5100, 470)),
    ((50, 0), (60, 4)),  # zero conversions in control
    ((12, 12), (10, 7)),  # all converted in control
]


@pytest.mark.parametrize("visitors,conversions", [(1000, 100), (7, 0), (7, 7), (1, 1), (250, 3)])
def test_wilson_interval_matches_statsmodels(visitors, conversions):
    low, high = wilson_interval(conversions, visitors)
    ref = proportion_confint(conversions, visitors, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(ref)
    assert 0 <= low <= conversions / visitors <= high <= 1


def test_wilson_interval_without_visitors():
    assert wilson_interval(0, 0) == (None, None)


@pytest.mark.parametrize("control,variant", DATASETS)
def test_z_test_matches_statsmodels(control, variant):
    a, b = Arm("A", *control), Arm("B", *variant)
    _, ref = proportions_ztest([variant[1], control[1]], [variant[0], control[0]])
    assert z_test_p_value(b, a) == pytest.approx(float(ref))


def test_z_test_with_no_conversions_anywhere_is_one():
    assert z_test_p_value(Arm("B", 100, 0), Arm("A", 100, 0)) == 1.0
    assert z_test_p_value(Arm("B", 0, 0), Arm("A", 100, 0)) is None


@pytest.mark.parametrize("control,variant", DATASETS)
def test_uplift_and_delta_method_interval(control, variant):
    a, b = Arm("A", *control), Arm("B", *variant)
    uplift, low, high = relative_uplift(b, a)
    if control[1] == 0:
        assert (uplift, low, high) == (None, None, None)
        return
    p_a, p_b = control[1] / control[0], variant[1] / variant[0]
    assert uplift == pytest.approx(p_b / p_a - 1)
    # delta method: gradient of p_b / p_a is (1/p_a, -p_b/p_a^2)
    grad = np.array([1 / p_a, -p_b / p_a**2])
    cov = np.diag([p_b * (1 - p_b) / variant[0], p_a * (1 - p_a) / control[0]])
    se = math.sqrt(grad @ cov @ grad)
    z = stats.norm.ppf(0.975)
    assert low == pytest.approx(uplift - z * se)
    assert high == pytest.approx(uplift + z * se)


def test_holm_matches_statsmodels_and_keeps_missing_values():
    p_values = [0.01, 0.04, None, 0.03]
    ref = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    got = holm_adjust(p_values)
    assert got[2] is None
    assert [got[0], got[1], got[3]] == pytest.approx(list(ref))


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels_on_random_p_values(seed):
    rng = np.random.default_rng(seed)
    p_values = list(rng.uniform(0, 0.2, size=rng.integers(1, 9)))
    assert holm_adjust(p_values) == pytest.approx(list(multipletests(p_values, method="holm")[1]))


def exact_chance_to_beat(a_succ, a_fail, b_succ, b_fail):
    """Evan Miller's closed form for P(p_B > p_A) with Beta(1+s, 1+f) posteriors."""
    alpha_a, beta_a, alpha_b, beta_b = a_succ + 1, a_fail + 1, b_succ + 1, b_fail + 1
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(
            special.betaln(alpha_a + i, beta_a + beta_b) - math.log(beta_b + i)
            - special.betaln(1 + i, beta_b) - special.betaln(alpha_a, beta_a)
        )
    return total


@pytest.mark.parametrize("control,variant", DATASETS)
def test_chance_to_beat_control_matches_closed_form(control, variant):
    a, b = Arm("A", *control), Arm("B", *variant)
    ref = exact_chance_to_beat(control[1], control[0] - control[1], variant[1], variant[0] - variant[1])
    assert chance_to_beat(b, a) == pytest.approx(ref, abs=0.002)


def test_chance_to_beat_control_matches_monte_carlo_at_scale():
    a, b = Arm("A", 200_000, 20_000), Arm("B", 200_000, 20_250)
    rng = np.random.default_rng(7)
    draws_a = rng.beta(1 + a.conversions, 1 + a.visitors - a.conversions, 2_000_000)
    draws_b = rng.beta(1 + b.conversions, 1 + b.visitors - b.conversions, 2_000_000)
    assert chance_to_beat(b, a) == pytest.approx(float(np.mean(draws_b > draws_a)), abs=0.002)


def test_srm_matches_scipy_and_flags_unbalanced_splits():
    balanced = srm_test([5020, 4980], [0.5, 0.5])
    assert balanced == pytest.approx(stats.chisquare([5020, 4980], [5000, 5000]).pvalue)
    assert balanced > 0.001
    unbalanced = srm_test([5400, 4600], [0.5, 0.5])
    assert unbalanced < 0.001
    weighted = srm_test([2000, 3000, 5000], [0.2, 0.3, 0.5])
    assert weighted == pytest.approx(1.0)
    assert srm_test([0, 0], [0.5, 0.5]) is None


def test_srm_with_a_variant_expected_at_weight_zero():
    """A weight-0 variant without visitors takes no part; one with visitors is a certain mismatch;
    never a NaN (it would make the results answer invalid JSON)."""
    assert srm_test([5020, 4980, 0], [0.5, 0.5, 0.0]) == pytest.approx(srm_test([5020, 4980], [0.5, 0.5]))
    assert srm_test([5000, 4990, 10], [0.5, 0.5, 0.0]) == 0.0
    assert srm_test([7, 0], [1.0, 0.0]) is None  # one variant left: nothing to compare
    assert srm_test([7, 3], [0.0, 0.0]) == 0.0


def test_sequential_p_value_formula():
    a, b = Arm("A", 4000, 400), Arm("B", 4000, 470)
    pooled = 870 / 8000
    v = pooled * (1 - pooled) * (2 / 4000)
    tau2 = max(0.2 * pooled, 0.005) ** 2
    theta = 470 / 4000 - 400 / 4000
    ratio = math.sqrt(v / (v + tau2)) * math.exp(theta**2 * tau2 / (2 * v * (v + tau2)))
    assert sequential_p_value(b, a) == pytest.approx(min(1.0, 1 / ratio))
    # always-valid p is more conservative than the fixed-horizon p at the same data
    assert sequential_p_value(b, a) > z_test_p_value(b, a)


def test_sequential_p_value_controls_error_under_peeking():
    """A/A test: an analyst peeks after every batch and stops at the first p < 0.05."""
    rng = np.random.default_rng(20261124)
    experiments, batches, batch, rate = 300, 40, 250, 0.1
    naive_hits = sequential_hits = 0
    for _ in range(experiments):
        conv = rng.binomial(batch, rate, size=(batches, 2)).cumsum(axis=0)
        naive = sequential = False
        for step in range(batches):
            n = batch * (step + 1)
            a, b = Arm("A", n, int(conv[step, 0])), Arm("B", n, int(conv[step, 1]))
            naive = naive or z_test_p_value(b, a) < 0.05
            sequential = sequential or sequential_p_value(b, a) < 0.05
        naive_hits += naive
        sequential_hits += sequential
    assert sequential_hits / experiments <= 0.05
    assert naive_hits / experiments > 0.05


def test_sequential_p_value_finds_a_real_effect():
    assert sequential_p_value(Arm("B", 20_000, 2_400), Arm("A", 20_000, 2_000)) < 0.001


def test_analyse_three_variants():
    arms = [Arm("A", 1000, 100), Arm("B", 1000, 150), Arm("C", 1000, 90)]
    result = analyse(arms, "A", {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
    rows = {r.variant: r for r in result.variants}
    assert [r.variant for r in result.variants] == ["A", "B", "C"]
    assert rows["A"].uplift is None and rows["A"].p_value is None
    raw = [rows["B"].p_value, rows["C"].p_value]
    assert [rows["B"].p_value_adjusted, rows["C"].p_value_adjusted] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    assert rows["B"].chance_to_beat_control > 0.99
    assert result.srm.mismatch is False
    assert result.verdict == Verdict(VerdictCode.SIGNIFICANT, rows["B"])
    assert rows["B"].uplift > 0


def test_no_winner_before_minimum_data():
    arms = [Arm("A", 99, 10), Arm("B", 99, 60)]
    result = analyse(arms, "A", {"A": 0.5, "B": 0.5})
    assert result.variants[1].p_value < 0.001
    assert result.verdict == Verdict(VerdictCode.NOT_ENOUGH_DATA, result.variants[0])
    few_conversions = analyse([Arm("A", 5000, 24), Arm("B", 5000, 90)], "A", {"A": 0.5, "B": 0.5})
    assert few_conversions.verdict == Verdict(VerdictCode.NOT_ENOUGH_DATA, few_conversions.variants[0])


def test_srm_overrides_the_verdict():
    result = analyse([Arm("A", 6000, 600), Arm("B", 4000, 600)], "A", {"A": 0.5, "B": 0.5})
    assert result.srm.mismatch is True
    assert result.verdict.code == VerdictCode.SAMPLE_RATIO_MISMATCH


def test_no_difference_is_said_once_there_is_enough_data():
    result = analyse([Arm("A", 5000, 500), Arm("B", 5000, 505)], "A", {"A": 0.5, "B": 0.5})
    assert result.verdict == Verdict(VerdictCode.NO_DIFFERENCE)


def test_alpha_sets_the_interval_level_and_the_threshold():
    arms = [Arm("A", 1000, 100), Arm("B", 1000, 150)]
    strict, loose = (analyse(arms, "A", {"A": 0.5, "B": 0.5}, alpha) for alpha in (0.01, 0.2))
    assert (strict.variants[1].ci_low, strict.variants[1].ci_high) == pytest.approx(
        proportion_confint(150, 1000, alpha=0.01, method="wilson"))
    assert strict.variants[1].uplift_ci_low < loose.variants[1].uplift_ci_low
    p = strict.variants[1].p_value_sequential
    assert 0.01 < p < 0.2
    assert strict.verdict.code == VerdictCode.NO_DIFFERENCE and loose.verdict.code == VerdictCode.SIGNIFICANT


def test_analyse_with_no_data():
    result = analyse([], "A", {"A": 0.5, "B": 0.5})
    assert (result.variants[0].variant, result.variants[0].visitors, result.variants[0].rate) == ("A", 0, None)
    assert result.srm.p_value is None
    assert result.verdict.code == VerdictCode.NOT_ENOUGH_DATA


def test_lower_is_better_for_a_conversion_metric():
    """Bounces or error events: the variant with fewer converting visitors wins."""
    arms = [Arm("A", 5000, 750), Arm("B", 5000, 500), Arm("C", 5000, 1000)]
    weights = {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}
    lower = analyse(arms, "A", weights, direction=Direction.DECREASE)
    rows = {r.variant: r for r in lower.variants}
    assert lower.verdict.variant == rows["B"] and rows["B"].better is True and rows["C"].better is False
    assert rows["B"].chance_to_beat_control > 0.999 and rows["C"].chance_to_beat_control < 0.001
    higher = analyse(arms, "A", weights)
    assert higher.verdict.variant.variant == "C" and higher.variants[1].better is False
    assert higher.variants[1].chance_to_beat_control == pytest.approx(1 - rows["B"].chance_to_beat_control)


def test_a_plan_reads_conversions_group_sequentially():
    """The issue's example at half the plan: significant for the group-sequential test's boundary at
    t = 0.5 (2.96), not yet for the always-valid p-value."""
    arms = [Arm("A", 1000, 100), Arm("B", 1000, 145)]
    weights = {"A": 0.5, "B": 0.5}
    plain = analyse(arms, "A", weights)
    planned = analyse(arms, "A", weights, plan=GroupSequentialPlan(per_variant=2000))
    b = planned.variants[1]
    assert plain.verdict.code == VerdictCode.NO_DIFFERENCE and plain.verdict.method == SequentialMethod.MSPRT
    assert z_statistic(arms[1], arms[0]) > boundaries([0.5], 0.05)[0]
    assert planned.verdict == Verdict(VerdictCode.SIGNIFICANT, b, SequentialMethod.GROUP_SEQUENTIAL)
    assert b.information_fraction == pytest.approx(0.5) and b.p_value_sequential < 0.05
    assert planned.new_looks == {"B": Look(0.5, z_statistic(arms[1], arms[0]), b.p_value_sequential)}
    # read again with the look recorded and the same data: same answer, no new look
    again = analyse(arms, "A", weights, plan=GroupSequentialPlan(2000, {"B": [planned.new_looks["B"]]}))
    assert again.new_looks == {} and again.variants[1].significant
