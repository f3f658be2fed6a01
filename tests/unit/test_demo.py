"""`make demo`'s traffic: the same visitors doing the same things whatever the clock it is generated at, and
the story its docstring promises (the dashboard's browser tests read it): landing has a winner, promo_banner
a sample ratio mismatch."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.events import DEFAULT_METRIC, EXPOSURE
from metrics_service.statistics import Arm, VerdictCode, analyse
from scripts import demo

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
# One clock on each day of a week, at times of day from just after midnight to just before the next.
CLOCKS = [MONDAY + timedelta(days=day, hours=hours) for day, hours in
          enumerate([0.01, 3.5, 8.25, 12, 14.34, 19.9, 23.99])]


def by_visitor(events: list[dict]) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    grouped: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for e in events:
        grouped.setdefault((e["experiment"], e["visitor_id"]), []).append((e["event_id"], e["event_type"],
                                                                           e["timestamp"]))
    return grouped


def test_a_later_clock_adds_todays_later_visitors_and_changes_no_earlier_one():
    morning = MONDAY + timedelta(days=2, hours=9, minutes=12)
    evening = morning + timedelta(hours=11)
    earlier = demo.visits(17, morning)
    later = demo.visits(17, evening)
    assert [(visitor, at) for visitor, at in later if at < morning] == earlier
    assert len(later) > len(earlier)
    assert demo.visits(18, morning) != earlier  # the seed chooses them
    # What each visitor does is theirs: the same events, but those after the earlier clock.
    before, after = by_visitor(demo.traffic(morning)), by_visitor(demo.traffic(evening))
    shared = before.keys() & after.keys()
    assert len(shared) > 0.9 * len(before)  # the rest: the experiments' windows moved on by 11 hours
    assert all(before[key] == [e for e in after[key] if e[2] <= morning.isoformat()] for key in shared)


def readout(events: list[dict], experiment: demo.Demo):
    """The experiment's readout of DEFAULT_METRIC as metrics_service makes it: per variant the visitors
    with an exposure, and how many of them have the metric's event too."""
    exposed: dict[str, set[str]] = {}
    converted: dict[str, set[str]] = {}
    for event in events:
        if event["experiment"] == experiment.key:
            if event["event_type"] == EXPOSURE:
                exposed.setdefault(event["variant"], set()).add(event["visitor_id"])
            elif event["event_type"] == DEFAULT_METRIC:
                converted.setdefault(event["variant"], set()).add(event["visitor_id"])
    weights = {v["name"]: v["weight"] for v in experiment.variants}
    arms = [Arm(name, len(exposed.get(name, ())), len(exposed.get(name, set()) & converted.get(name, set())))
            for name in weights]
    return analyse(arms, experiment.variants[0]["name"], weights)


@pytest.mark.parametrize("now", CLOCKS, ids=lambda now: now.strftime("%a %H:%M"))
def test_the_story_holds_at_any_time_of_any_day(now):
    events = demo.traffic(now)
    experiments = {e.key: e for e in demo.EXPERIMENTS}
    landing = readout(events, experiments["landing"])
    counts = [(v.variant, v.conversions, v.visitors, v.p_value_sequential) for v in landing.variants]
    assert landing.verdict.code == VerdictCode.SIGNIFICANT and landing.verdict.variant.variant == "B", counts
    assert not landing.srm.mismatch
    assert readout(events, experiments["promo_banner"]).srm.mismatch
    assert not [e for e in events if e["experiment"] == "accent_test"]  # a draft
