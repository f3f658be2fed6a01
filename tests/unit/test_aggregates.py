"""The pure parts of the aggregates' upkeep: what a batch changes."""
from metrics_service.aggregates import ANY, cohort_deltas, widen
from metrics_service.series import DAY_MS, HOUR_MS

T0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS  # midnight


def test_cohort_deltas_move_a_visitor_between_cohorts():
    key = ("landing", "A", "v1")
    deltas, changed = cohort_deltas({key: (T0 + HOUR_MS, 1)}, {key: (T0 + 5, 2)})
    assert changed == {key: (T0 + 5, 3)}
    assert deltas == {("landing", "A", T0 + HOUR_MS, 1): -1, ("landing", "A", T0, 3): 1}
    assert cohort_deltas({key: (T0, 3)}, {key: (T0 + 9, 1)}) == ({}, {})


def test_widen_gathers_a_visitors_states_across_experiments():
    states = {("landing", "A", "v1"): (T0 + 50, 1), ("hero", "A", "v1"): (T0 + 10, 2),
              ("pricing", "B", "v1"): (T0 + 90, 4), ("landing", "B", "v2"): (T0, 1)}
    assert widen(states) == {
        (ANY, "A", "v1"): (T0 + 10, 3), (ANY, "B", "v1"): (T0 + 90, 4), (ANY, ANY, "v1"): (T0 + 10, 7),
        (ANY, "B", "v2"): (T0, 1), (ANY, ANY, "v2"): (T0, 1)}
