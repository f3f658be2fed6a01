"""What a reader sees of the API's answers: percentages, the results table, the audit log as old → new,
contrast ratios and variant colours (dashboard/formatting.py)."""
import pytest

from dashboard.formatting import (
    PALETTE,
    audit_rows,
    contrast_ratio,
    flag_label,
    percent,
    primary_result,
    results_table,
    variant_colors,
    variant_order,
)

RESULTS = {
    "control": "A", "alpha": 0.05, "verdict_code": "significant", "verdict_variant": "B",
    "variants": [
        {"variant": "A", "visitors": 1000, "conversions": 109, "rate": 0.1091, "ci_low": 0.0911, "ci_high": 0.1301,
         "uplift": None, "uplift_ci_low": None, "uplift_ci_high": None, "p_value_sequential": None,
         "chance_to_beat_control": None, "significant": None},
        {"variant": "B", "visitors": 1010, "conversions": 150, "rate": 0.1485, "ci_low": 0.128, "ci_high": 0.172,
         "uplift": 0.3612, "uplift_ci_low": 0.0812, "uplift_ci_high": 0.6412, "p_value_sequential": 0.0004,
         "chance_to_beat_control": 0.9968, "significant": True},
        {"variant": "C", "visitors": 990, "conversions": 101, "rate": 0.102, "ci_low": 0.084, "ci_high": 0.122,
         "uplift": -0.065, "uplift_ci_low": -0.3, "uplift_ci_high": 0.17, "p_value_sequential": 0.81,
         "chance_to_beat_control": 0.31, "significant": False},
    ],
}


@pytest.mark.parametrize("value,text", [(0.1091, "10.9%"), (0.0045, "0.45%"), (0, "0.0%"), (1, "100.0%"),
                                        (None, "—"), (float("nan"), "—")])
def test_percentages_have_sensible_precision(value, text):
    assert percent(value) == text


def test_the_results_table_reads_as_words_and_percentages():
    table = results_table(RESULTS)
    assert list(table.columns) == ["Variant", "Visitors", "Conversions", "Conversion rate", "Uplift vs control",
                                   "Chance to beat control", "p-value", "Significance"]
    a, b, c = table.to_dict("records")
    assert a == {"Variant": "A (control)", "Visitors": 1000, "Conversions": 109,
                 "Conversion rate": "10.9% (9.1% to 13.0%)", "Uplift vs control": "control",
                 "Chance to beat control": "control", "p-value": "control", "Significance": "control"}
    assert b["Uplift vs control"] == "+36.1% (+8.1% to +64.1%)"
    assert (b["Chance to beat control"], b["p-value"], b["Significance"]) == ("99.7%", "< 0.001", "better")
    assert (c["Uplift vs control"], c["Significance"]) == ("-6.5% (-30.0% to +17.0%)", "not significant")
    assert "None" not in table.to_string()


def test_the_primary_result_names_the_verdicts_variant_or_what_keeps_it_from_one():
    assert primary_result(RESULTS) == "B beats A: +36.1% (+8.1% to +64.1%)"
    assert primary_result({**RESULTS, "verdict_code": "sample_ratio_mismatch"}) == "Sample ratio mismatch"
    assert primary_result({"variants": [], "verdict_code": None}) == "No data yet"


def test_the_audit_log_is_one_row_per_change_with_old_and_new_of_what_changed():
    entries = [
        {"at": 1_767_225_600_000, "actor": "alice", "entity": "experiment", "key": "hero", "action": "update",
         "old": {"key": "hero", "status": "draft", "coverage": 1.0,
                 "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]},
         "new": {"key": "hero", "status": "running", "coverage": 0.8,
                 "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5,
                                                             "overrides": {"cta_text": "Go"}}]}},
        {"at": 1_767_225_500_000, "actor": "admin", "entity": "flag", "key": "show_promo_section", "action": "create",
         "old": None, "new": {"key": "show_promo_section", "value": True, "rollout": 1.0}},
    ]
    update, create = audit_rows(entries).to_dict("records")
    assert update == {"When": "2026-01-01 00:00:00 UTC", "Who": "alice", "What": "experiment hero",
                      "Changed": "status, coverage, variants",
                      "Old": "status: draft; coverage: 100%; variants: A 50%, B 50%",
                      "New": "status: running; coverage: 80%; variants: A 50%, B 50% {cta_text=Go}"}
    assert (create["Changed"], create["Old"], create["New"]) == ("created", "", "value: on; rollout: 100%")


def test_contrast_ratios_follow_wcag():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1)
    assert contrast_ratio("#3b5bdb", "#ffffff") > 4.5  # the default accent passes AA under white text
    assert contrast_ratio("#ffd43b", "#ffffff") < 4.5


def test_a_variant_keeps_its_colour_whatever_else_is_shown():
    everyone = variant_order(["C", "A", "B"], ["A", "B", "C"])
    colors = variant_colors(everyone)
    assert colors == {"A": PALETTE[0], "B": PALETTE[1], "C": PALETTE[2]}
    assert variant_colors(variant_order(["C"], everyone))["C"] == PALETTE[2]  # filtered to C alone


def test_a_flag_is_labelled_by_what_it_does():
    assert flag_label({"key": "cta_text", "description": "Text of the call-to-action button"}) == \
        "Text of the call-to-action button"
    assert flag_label({"key": "cta_text", "description": ""}) == "Cta text"
