"""Segment readouts: Benjamini-Hochberg across segments, small segments not judged, and an A/A check."""
import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from metrics_service.statistics import MIN_CONVERSIONS, MIN_VISITORS, Arm, benjamini_hochberg, segment_results


def test_benjamini_hochberg_matches_statsmodels_and_keeps_missing_values():
    p_values = [0.01, None, 0.04, 0.03, 0.2, 0.001]
    present = [p for p in p_values if p is not None]
    reference = iter(multipletests(present, method="fdr_bh")[1])
    assert benjamini_hochberg(p_values) == [pytest.approx(next(reference)) if p is not None else None
                                            for p in p_values]
    assert benjamini_hochberg([]) == [] and benjamini_hochberg([None]) == [None]


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_statsmodels_on_random_p_values(seed):
    p_values = list(np.random.default_rng(seed).uniform(0, 0.2, size=25))
    assert benjamini_hochberg(p_values) == pytest.approx(list(multipletests(p_values, method="fdr_bh")[1]))


def test_segments_are_judged_with_adjusted_p_values_and_small_ones_are_flagged():
    segments = {
        "mobile": [Arm("A", 1000, 100), Arm("B", 1000, 150)],
        "desktop": [Arm("A", 800, 80), Arm("B", 820, 84)],
        "tablet": [Arm("A", MIN_VISITORS - 1, 30), Arm("B", 120, 40)],  # too few visitors in A
    }
    readouts = segment_results(segments, "A")
    assert [r.value for r in readouts] == ["mobile", "desktop", "tablet"]  # most visitors first
    mobile, desktop, tablet = readouts
    assert (mobile.visitors, mobile.conversions, mobile.judged) == (2000, 250, True)
    raw = [proportions_ztest([150, 100], [1000, 1000])[1], proportions_ztest([84, 80], [820, 800])[1]]
    assert [mobile.variants[1].p_value, desktop.variants[1].p_value] == pytest.approx(raw)
    adjusted = multipletests(raw, method="fdr_bh")[1]
    assert [mobile.variants[1].p_value_adjusted, desktop.variants[1].p_value_adjusted] == pytest.approx(adjusted)
    assert mobile.variants[1].significant is True and desktop.variants[1].significant is False
    assert mobile.variants[1].uplift == pytest.approx(0.5)
    assert mobile.variants[0].variant == "A" and mobile.variants[0].p_value is None
    assert tablet.judged is False
    assert tablet.variants[1].p_value is not None  # shown, but not judged:
    assert tablet.variants[1].p_value_adjusted is None and tablet.variants[1].significant is None


def test_a_segment_missing_the_control_has_no_comparison():
    [readout] = segment_results({"(other)": [Arm("B", 300, 40)]}, "A")
    control, variant = readout.variants
    assert (control.variant, control.visitors) == ("A", 0)
    assert variant.uplift is None and variant.p_value is None and readout.judged is False


def test_a_a_experiments_broken_down_over_ten_segments_rarely_show_a_difference():
    """Both variants identical: the share of experiments where any of 10 segments has an adjusted
    p < 0.05 stays at or below 5% (Benjamini-Hochberg controls the family-wise error under the null)."""
    rng = np.random.default_rng(2026)
    experiments, segments = 2000, 10
    rates = rng.uniform(0.08, 0.3, size=segments)
    visitors = rng.integers(MIN_VISITORS * 6, 3000, size=(experiments, segments, 2))
    conversions = rng.binomial(visitors, rates[None, :, None])
    assert (conversions >= MIN_CONVERSIONS).all()
    flagged = 0
    for e in range(experiments):
        readouts = segment_results({f"s{s}": [Arm("A", int(visitors[e, s, 0]), int(conversions[e, s, 0])),
                                              Arm("B", int(visitors[e, s, 1]), int(conversions[e, s, 1]))]
                                    for s in range(segments)}, "A")
        assert all(r.judged for r in readouts)
        flagged += any(r.variants[1].significant for r in readouts)
    assert flagged / experiments <= 0.05
    # unadjusted, the same data would flag far more experiments (about 1 - 0.95^10 = 40%)
