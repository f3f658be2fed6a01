"""The verdict's sentence, written where the results answer is built."""
from metrics_service.results import verdict_sentence
from metrics_service.statistics import Arm, Verdict, VerdictCode, analyse

WEIGHTS = {"A": 0.5, "B": 0.5}


def test_a_winner_is_named_with_its_interval_at_the_level_of_alpha():
    readout = analyse([Arm("A", 1000, 100), Arm("B", 1000, 150)], "A", WEIGHTS, alpha=0.05)
    b = readout.variants[1]
    assert verdict_sentence(readout.verdict, "form_submit", "A", 0.05) == (
        f"B beats A on form_submit: +50.0% (95% CI {b.uplift_ci_low * 100:+.1f}% to {b.uplift_ci_high * 100:+.1f}%),"
        f" always-valid p = {b.p_value_sequential:.3g}.")
    loose = analyse([Arm("A", 1000, 100), Arm("B", 1000, 150)], "A", WEIGHTS, alpha=0.2)
    assert "(80% CI " in verdict_sentence(loose.verdict, "form_submit", "A", 0.2)


def test_a_worse_variant_is_called_worse():
    readout = analyse([Arm("A", 5000, 750), Arm("B", 5000, 500)], "A", WEIGHTS)
    sentence = verdict_sentence(readout.verdict, "cta_click", "A", 0.05)
    assert sentence.startswith("B is worse than A on cta_click: -33.3%")


def test_the_other_codes_have_their_sentences():
    short = analyse([Arm("A", 99, 10), Arm("B", 120, 60)], "A", WEIGHTS)
    assert verdict_sentence(short.verdict, "cta_click", "A", 0.05) == (
        "Not enough data yet: every variant needs at least 100 visitors and 25 cta_click conversions before a "
        "winner can be called (smallest: A with 99 visitors, 10 conversions).")
    assert verdict_sentence(Verdict(VerdictCode.NO_DIFFERENCE), "form_submit", "A", 0.05) == (
        "No significant difference from A on form_submit yet (always-valid p ≥ 0.05); keep the experiment running "
        "or accept no effect.")
    assert verdict_sentence(Verdict(VerdictCode.SAMPLE_RATIO_MISMATCH), "form_submit", "A", 0.05).startswith(
        "Sample ratio mismatch: visitors are not split as configured")
