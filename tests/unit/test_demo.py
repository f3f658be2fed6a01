"""`make demo`'s traffic: the same visitors doing the same things whatever the clock it is generated at."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scripts import demo

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


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
