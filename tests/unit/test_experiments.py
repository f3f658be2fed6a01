from dataclasses import replace

from core.bucketing import assign_variant
from core.experiments import LANDING_EXPERIMENT, Assignment, Experiment, Variant, decide

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
