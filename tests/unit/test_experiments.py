from dataclasses import replace

import pytest
from growthbook import Experiment as GbExperiment
from growthbook import GrowthBook
from hypothesis import given, settings
from hypothesis import strategies as st

from core.bucketing import assign_variant
from core.experiments import (
    LANDING_EXPERIMENT,
    MAX_VARIANTS,
    MIN_VARIANTS,
    STATUSES,
    Assignment,
    Experiment,
    Namespace,
    Variant,
    conflicts,
    decide,
)
from core.flags import DEFAULT_FLAGS, value_problem

EXPERIMENT = Experiment(key="exp", variants=(Variant("A", 0.5), Variant("B", 0.5)))


def visitor(visitor_id: str, **attributes) -> dict:
    return {"id": visitor_id, **attributes}


def test_decide_follows_status_and_stickiness():
    assert decide(EXPERIMENT, visitor("v1")) == Assignment(assign_variant("v1", ["A", "B"], seed="exp"), True, True)
    assert decide(EXPERIMENT, visitor("v1"), stored="B") == Assignment("B", True, False)
    assert decide(replace(EXPERIMENT, status="stopped"), visitor("v1"), stored="B") == Assignment("A", False, False)
    assert decide(replace(EXPERIMENT, status="draft"), visitor("v1")) == Assignment("A", False, False)
    outside = next(
        f"v{i}" for i in range(1000) if assign_variant(f"v{i}", ["A", "B"], coverage=0.1, seed="exp") is None
    )
    assert decide(replace(EXPERIMENT, coverage=0.1), visitor(outside)) == Assignment("A", False, False)


def test_a_remembered_variant_the_experiment_no_longer_has_is_ignored():
    fresh = decide(EXPERIMENT, visitor("v1"))
    assert decide(EXPERIMENT, visitor("v1"), stored="Z") == fresh and fresh.new


def test_eligibility_keeps_visitors_out_but_not_remembered_ones():
    targeted = replace(EXPERIMENT, condition={"utm_source": "google"})
    assert decide(targeted, visitor("v1")) == Assignment("A", False, False)
    assert decide(targeted, visitor("v1", utm_source="google")).in_experiment
    assert decide(targeted, visitor("v1"), stored="B") == Assignment("B", True, False)
    nowhere = replace(EXPERIMENT, namespace=Namespace("hero", 0.0, 0.0001))
    assert not any(decide(nowhere, visitor(f"v{i}")).in_experiment for i in range(200))


def test_the_seed_replaces_the_key_in_the_hash():
    seeded = replace(EXPERIMENT, seed="other")
    ids = [f"v{i}" for i in range(200)]
    assert [decide(seeded, visitor(v)).variant for v in ids] == [assign_variant(v, ["A", "B"], seed="other")
                                                                  for v in ids]


def test_definition_round_trips_through_its_mapping():
    assert Experiment.from_dict(LANDING_EXPERIMENT.as_dict()) == LANDING_EXPERIMENT
    assert LANDING_EXPERIMENT.as_dict() == {
        "key": "landing", "description": "Landing page headline and layout",
        "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                     {"name": "B", "weight": 0.5, "overrides": {
                         "layout": "split", "hero_headline": "Know what works before you scale it",
                         "hero_lede": "Run A/B tests on your landing page, self-hosted, with results you can trust."}}],
        "coverage": 1.0, "seed": None, "status": "running", "namespace": None, "condition": None,
        "start_at": None, "stop_at": None,
        "primary_metric": None, "secondary_metrics": [], "guardrail_metrics": []}
    targeted = replace(EXPERIMENT, namespace=Namespace("hero", 0.25, 0.5), condition={"returning": True})
    assert Experiment.from_dict(targeted.as_dict()) == targeted
    # a stored row from before overrides, namespaces and conditions
    assert Experiment.from_dict({"key": "exp", "variants": [{"name": "A", "weight": 0.5},
                                                            {"name": "B", "weight": 0.5}]}) == EXPERIMENT


def test_the_built_in_experiment_overrides_only_seed_flags_with_values_that_fit():
    flags = {flag["key"]: flag for flag in DEFAULT_FLAGS}
    for variant in LANDING_EXPERIMENT.variants:
        for key, value in variant.overrides.items():
            assert value_problem(flags[key]["type"], value, flags[key]["allowed"]) is None


def running(key: str, overrides: dict, namespace: Namespace | None = None, status: str = "running") -> Experiment:
    return Experiment(key=key, variants=(Variant("A", 0.5), Variant("B", 0.5, overrides)), namespace=namespace,
                      status=status)


def test_conflicts_name_the_other_experiment_and_each_shared_flag():
    mine = running("mine", {"layout": "split", "cta_text": "Go"})
    others = [running("b_other", {"cta_text": "Try", "layout": "split"}), running("a_other", {"cta_text": "Hi"}),
              running("stopped", {"cta_text": "x"}, status="stopped"),
              running("unrelated", {"accent_color": "#000000"}), mine]
    assert conflicts(mine, others) == [("a_other", "cta_text"), ("b_other", "cta_text"), ("b_other", "layout")]


@pytest.mark.parametrize("first,second,overlap", [
    (Namespace("hero", 0, 0.5), Namespace("hero", 0.5, 1), False),
    (Namespace("hero", 0, 0.5), Namespace("hero", 0.4, 1), True),
    (Namespace("hero", 0, 0.5), Namespace("other", 0.5, 1), True),
    (Namespace("hero", 0, 0.5), None, True),
    (None, None, True),
])
def test_only_disjoint_ranges_of_one_namespace_keep_traffic_apart(first, second, overlap):
    a, b = running("a", {"cta_text": "A"}, first), running("b", {"cta_text": "B"}, second)
    assert bool(conflicts(a, [b])) is overlap and bool(conflicts(b, [a])) is overlap


@st.composite
def experiments(draw):
    count = draw(st.integers(MIN_VARIANTS, MAX_VARIANTS))
    raw = draw(st.lists(st.floats(0.01, 1), min_size=count, max_size=count))
    return Experiment(
        key=draw(st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)),
        variants=tuple(Variant(chr(ord("A") + i), w / sum(raw)) for i, w in enumerate(raw)),
        coverage=draw(st.floats(0, 1)),
        seed=draw(st.none() | st.text(max_size=20)),
        status=draw(st.sampled_from(STATUSES)),
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(experiment=experiments(), visitor_id=st.text(min_size=1, max_size=40))
def test_a_fresh_visitor_gets_what_growthbook_gives(experiment, visitor_id):
    """decide() for a visitor with nothing stored is GrowthBook's own run() of the same experiment."""
    growthbook = GrowthBook(attributes={"id": visitor_id})
    result = growthbook.run(GbExperiment(
        key=experiment.key, variations=experiment.variant_names, weights=[v.weight for v in experiment.variants],
        coverage=experiment.coverage, seed=experiment.seed, hashVersion=2, status=experiment.status))
    growthbook.destroy()
    assignment = decide(experiment, {"id": visitor_id})
    assert (assignment.variant, assignment.in_experiment) == (experiment.variant_names[result.variationId],
                                                              result.inExperiment)
    assert assignment.new == (result.inExperiment and experiment.status == "running")
