"""core.evaluation decides exactly what the official GrowthBook SDK decides from our features payload."""
from __future__ import annotations

import pytest

from core.evaluation import evaluate, features_payload
from core.experiments import Experiment, decide
from tests.helpers import mixed_visitors, sdk_decisions

FLAGS = [
    {"key": "cta_text", "type": "string", "value": "Get started", "off_value": "Get started", "rollout": 1.0},
    {"key": "layout", "type": "string", "value": "centered", "off_value": "centered", "rollout": 1.0},
    {"key": "hero_headline", "type": "string", "value": "Ship experiments", "off_value": "Ship experiments",
     "rollout": 1.0},
    {"key": "show_promo_section", "type": "boolean", "value": True, "off_value": False, "rollout": 0.3},
    {"key": "promo_discount_percent", "type": "number", "value": 20, "off_value": 20, "rollout": 1.0},
    {"key": "accent_color", "type": "color", "value": "#3b5bdb", "off_value": "#3b5bdb", "rollout": 1.0},
]

EXPERIMENTS = [
    {"key": "cta_copy", "status": "running", "coverage": 0.8, "seed": "cta-seed",
     "namespace": {"name": "hero", "start": 0.0, "end": 0.5}, "condition": None,
     "variants": [{"name": "A", "weight": 0.2, "overrides": {}},
                  {"name": "B", "weight": 0.3, "overrides": {"cta_text": "Start free"}},
                  {"name": "C", "weight": 0.5, "overrides": {"cta_text": "Try it", "layout": "split"}}]},
    {"key": "hero_split", "status": "running", "coverage": 1.0, "seed": None,
     "namespace": {"name": "hero", "start": 0.5, "end": 1.0}, "condition": None,
     "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                  {"name": "B", "weight": 0.5, "overrides": {"layout": "split", "cta_text": "Go"}}]},
    {"key": "paid_promo", "status": "running", "coverage": 1.0, "seed": None, "namespace": None,
     "condition": {"utm_source": "google", "device": {"$in": ["mobile", "tablet"]}},
     "variants": [{"name": "off", "weight": 0.5, "overrides": {"promo_discount_percent": 10}},
                  {"name": "on", "weight": 0.5, "overrides": {"promo_discount_percent": 30,
                                                              "show_promo_section": True}}]},
    {"key": "returning_color", "status": "running", "coverage": 0.5, "seed": "rc", "namespace": None,
     "condition": {"returning": True},
     "variants": [{"name": "A", "weight": 0.5, "overrides": {"accent_color": "#222222"}},
                  {"name": "B", "weight": 0.5, "overrides": {"accent_color": "#aa3300"}}]},
    {"key": "old_test", "status": "stopped", "coverage": 1.0, "seed": None, "namespace": None, "condition": None,
     "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                  {"name": "B", "weight": 0.5, "overrides": {"hero_headline": "Stopped"}}]},
    {"key": "draft_test", "status": "draft", "coverage": 1.0, "seed": None, "namespace": None, "condition": None,
     "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                  {"name": "B", "weight": 0.5, "overrides": {"hero_headline": "Draft"}}]},
]


def test_sdk_reads_the_payload_as_the_page_decides():
    payload = features_payload(FLAGS, EXPERIMENTS)
    seen = {key: set() for key in payload}
    for attributes in mixed_visitors(1000):
        ours = evaluate(FLAGS, EXPERIMENTS, attributes)
        assert sdk_decisions(payload, attributes) == (ours.values, ours.exposures), attributes
        for key, value in ours.values.items():
            seen[key].add(str(value))
    # the sample exercises every experiment's overrides and the partial rollout
    assert seen["cta_text"] == {"Get started", "Start free", "Try it", "Go"}
    assert seen["promo_discount_percent"] == {"10", "20", "30"}
    assert seen["accent_color"] == {"#3b5bdb", "#222222", "#aa3300"}
    assert seen["show_promo_section"] == {"True", "False"}
    assert seen["hero_headline"] == {"Ship experiments"}  # stopped and draft experiments show nothing


def test_disjoint_namespaces_never_share_a_visitor():
    both = 0
    counts = {"cta_copy": 0, "hero_split": 0}
    for i in range(10_000):
        result = evaluate(FLAGS, EXPERIMENTS[:2], {"id": f"visitor-{i}"})
        inside = [key for key, a in result.assignments.items() if a.in_experiment]
        both += len(inside) == 2
        for key in inside:
            counts[key] += 1
    assert both == 0
    # each half of the namespace gets about half of the visitors (cta_copy: 80% coverage of its half)
    assert 3600 < counts["cta_copy"] < 4400
    assert 4600 < counts["hero_split"] < 5400


def test_condition_admits_exactly_the_matching_visitors():
    experiment = {**EXPERIMENTS[2], "condition": {"utm_source": "google"}}
    for attributes in mixed_visitors(2000, seed=11):
        in_it = decide(Experiment.from_dict(experiment), attributes).in_experiment
        assert in_it == (attributes.get("utm_source") == "google")


@pytest.mark.parametrize("sticky", ["A", "B"])
def test_a_remembered_variant_wins_over_weights_and_eligibility(sticky):
    experiment = {**EXPERIMENTS[1], "variants": [{"name": "A", "weight": 1.0, "overrides": {}},
                                                 {"name": "B", "weight": 0.0, "overrides": {"layout": "split"}}],
                  "namespace": {"name": "hero", "start": 0.0, "end": 0.0001}}
    result = evaluate(FLAGS, [experiment], {"id": "someone"}, {"hero_split": sticky})
    assert result.assignments["hero_split"].variant == sticky
    assert result.assignments["hero_split"].in_experiment and not result.assignments["hero_split"].new
    assert result.values["layout"] == ("split" if sticky == "B" else "centered")


def test_unknown_remembered_variant_is_ignored_and_stopped_experiment_shows_defaults():
    result = evaluate(FLAGS, [EXPERIMENTS[1]], {"id": "v1"}, {"hero_split": "Z"})
    assert result.assignments["hero_split"].variant in {"A", "B"}
    stopped = evaluate(FLAGS, [EXPERIMENTS[4]], {"id": "v1"}, {"old_test": "B"})
    assert stopped.assignments["old_test"] == stopped.assignments["old_test"].__class__("A", False)
    assert stopped.values["hero_headline"] == "Ship experiments"


def test_wire_shapes_and_definitions_are_read_alike():
    from core.evaluation import overridden_flags, variant_names

    experiment = EXPERIMENTS[0]
    assert variant_names(experiment) == variant_names(Experiment.from_dict(experiment)) == ["A", "B", "C"]
    assert overridden_flags(experiment) == {"cta_text", "layout"}
    as_definitions = [Experiment.from_dict(e) for e in EXPERIMENTS]
    for attributes in mixed_visitors(50):
        assert evaluate(FLAGS, as_definitions, attributes) == evaluate(FLAGS, EXPERIMENTS, attributes)
