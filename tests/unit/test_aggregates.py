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


def test_a_visitor_moves_between_segments_when_an_earlier_exposure_arrives():
    from metrics_service.aggregates import ANY, Exposure, earliest_contexts, segment_deltas

    values = ("mobile",) + (None,) * 8
    later = Exposure("landing", "A", "v1", 7_200_000, "b", ("desktop",) + (None,) * 8)
    earlier = Exposure("landing", "A", "v1", 3_600_000, "a", values)
    batch = earliest_contexts([later, earlier])
    assert batch[("landing", "A", "v1")] == (3_600_000, "a", values)
    assert batch[(ANY, ANY, "v1")] == batch[(ANY, "A", "v1")] == batch[("landing", "A", "v1")]
    key = ("landing", "A", "v1")
    old_context = (7_200_000, "b", ("desktop",) + (None,) * 8)
    store, deltas = segment_deltas({key: (7_200_000, 1)}, {key: (3_600_000, 1)}, {key: old_context},
                                   {key: batch[key]})
    assert store == {key: batch[key]}
    assert deltas[("landing", "A", "device", "desktop", 7_200_000, 1)] == -1
    assert deltas[("landing", "A", "device", "mobile", 3_600_000, 1)] == 1
    assert deltas[("landing", "A", "utm_source", "(none)", 7_200_000, 1)] == -1
    # a later exposure changes nothing; a click moves the visitor to the mask with both bits
    assert segment_deltas({key: (3_600_000, 1)}, {}, {key: batch[key]}, {key: old_context}) == ({}, {})
    _, moved = segment_deltas({key: (3_600_000, 1)}, {key: (3_600_000, 3)}, {key: batch[key]}, {})
    assert moved[("landing", "A", "device", "mobile", 3_600_000, 1)] == -1
    assert moved[("landing", "A", "device", "mobile", 3_600_000, 3)] == 1


def test_a_visitors_stored_counts_move_with_their_context():
    from metrics_service.aggregates import NONE, by_segment, moved_counts

    mobile = ("mobile",) + (None,) * 8
    desktop = ("desktop", "Firefox") + (None,) * 7
    key = ("landing", "A", "v1")
    stored = [((*key, "cta_click", T0), 2), ((*key, "page_view", T0), 1)]
    moves = moved_counts(stored, {key: mobile}, {key: desktop})
    assert moves[("landing", "A", "device", "mobile", "cta_click", T0)] == -2
    assert moves[("landing", "A", "device", "desktop", "cta_click", T0)] == 2
    assert moves[("landing", "A", "browser", NONE, "page_view", T0)] == -1
    assert moves[("landing", "A", "browser", "Firefox", "page_view", T0)] == 1
    assert moves[("landing", "A", "os", NONE, "cta_click", T0)] == 0  # (none) before and after
    # a first context: into its segments only; no context: in no segment
    assert moved_counts(stored, {}, {key: mobile}) == by_segment(stored, {key: mobile})
    assert sum(by_segment(stored, {key: mobile}).values()) == 3 * 9
    assert by_segment(stored, {("landing", "B", "v1"): mobile}) == {}
