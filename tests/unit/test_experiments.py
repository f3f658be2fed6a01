from dataclasses import replace

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
    Variant,
    decide,
)

EXPERIMENT = Experiment(key="exp", variants=(Variant("A", 0.5), Variant("B", 0.5)))


def test_decide_follows_status_and_stickiness():
    assert decide(EXPERIMENT, "v1") == Assignment(assign_variant("v1", ["A", "B"], seed="exp"), True, True)
    assert decide(EXPERIMENT, "v1", stored="B") == Assignment("B", True, False)
    assert decide(replace(EXPERIMENT, status="stopped"), "v1", stored="B") == Assignment("A", False, False)
    assert decide(replace(EXPERIMENT, status="draft"), "v1") == Assignment("A", False, False)
    outside = next(
        f"v{i}" for i in range(1000) if assign_variant(f"v{i}", ["A", "B"], coverage=0.1, seed="exp") is None
    )
    assert decide(replace(EXPERIMENT, coverage=0.1), outside) == Assignment("A", False, False)


def test_the_seed_replaces_the_key_in_the_hash():
    seeded = replace(EXPERIMENT, seed="other")
    ids = [f"v{i}" for i in range(200)]
    assert [decide(seeded, v).variant for v in ids] == [assign_variant(v, ["A", "B"], seed="other") for v in ids]


def test_definition_round_trips_through_its_mapping():
    assert Experiment.from_dict(LANDING_EXPERIMENT.as_dict()) == LANDING_EXPERIMENT
    assert LANDING_EXPERIMENT.as_dict() == {
        "key": "landing", "description": "Landing page headline and layout",
        "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}],
        "coverage": 1.0, "seed": None, "status": "running"}


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
    assignment = decide(experiment, visitor_id)
    assert (assignment.variant, assignment.in_experiment) == (experiment.variant_names[result.variationId],
                                                              result.inExperiment)
    assert assignment.new == (result.inExperiment and experiment.status == "running")
