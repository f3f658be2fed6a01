import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.events import EventValidationError, parse_events, to_row

GOOD = {"visitor_id": "v1", "variant": "A", "event_type": "page_view"}


def errors_of(payload):
    with pytest.raises(EventValidationError) as info:
        parse_events(payload)
    return info.value.errors


def test_single_event_gets_defaults():
    [event] = parse_events(GOOD)
    assert event.experiment == "landing"
    assert event.event_id is None and event.timestamp is None


def test_batch_is_parsed_in_order():
    events = parse_events([GOOD, {**GOOD, "event_type": "cta_click"}])
    assert [e.event_type for e in events] == ["page_view", "cta_click"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"event_type": "not a key"}, "event_type"),
        ({"value": "12"}, "value"),
        ({"value": True}, "value"),
        ({"visitor_id": ""}, "visitor_id"),
        ({"visitor_id": 12}, "visitor_id"),
        ({"variant": "A B"}, "variant"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"timestamp": "yesterday-ish"}, "timestamp"),
        ({"properties": [1, 2]}, "properties"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_problem_names_its_field(change, field):
    [problem] = errors_of({**GOOD, **change})
    assert problem["field"] == field
    assert problem["index"] == 0
    assert problem["message"]


def test_missing_fields_are_all_listed():
    problems = errors_of({})
    assert {p["field"] for p in problems} == {"visitor_id", "variant", "event_type"}


def test_batch_errors_carry_the_index():
    problems = errors_of([GOOD, {**GOOD, "event_type": "no/pe"}, GOOD, {**GOOD, "variant": ""}])
    assert sorted((p["index"], p["field"]) for p in problems) == [(1, "event_type"), (3, "variant")]


@pytest.mark.parametrize("payload", [[], "text", 42, None])
def test_non_event_bodies_are_rejected(payload):
    assert errors_of(payload)


def test_timestamps_far_from_now_are_rejected():
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=800)).isoformat()
    assert errors_of({**GOOD, "timestamp": future})[0]["field"] == "timestamp"
    assert errors_of({**GOOD, "timestamp": past})[0]["field"] == "timestamp"


def test_properties_are_bounded_in_size_and_depth():
    assert errors_of({**GOOD, "properties": {"k": "x" * 5000}})[0]["field"] == "properties"
    assert errors_of({**GOOD, "properties": {"a": {"b": {"c": {"d": 1}}}}})[0]["field"] == "properties"
    [ok] = parse_events({**GOOD, "properties": {"a": {"b": 1}}})
    assert ok.properties == {"a": {"b": 1}}


def test_to_row_fills_id_and_time():
    event_id = uuid.uuid4()
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    [event] = parse_events({**GOOD, "event_id": str(event_id), "timestamp": when.isoformat(), "properties": {"a": 1}})
    row = to_row(event)
    assert row.event_id == str(event_id)
    assert row.ts == int(when.timestamp() * 1000)
    assert json.loads(row.properties) == {"a": 1}
    [anonymous] = parse_events(GOOD)
    assert uuid.UUID(to_row(anonymous).event_id)


def test_forced_and_uncovered_events_are_marked_excluded():
    [normal, forced, outside] = parse_events([GOOD, {**GOOD, "forced": True}, {**GOOD, "in_experiment": False}])
    assert to_row(normal).excluded is None
    assert to_row(forced).excluded == "forced"
    assert to_row(outside).excluded == "not_in_experiment"


def test_a_value_is_a_finite_number():
    assert parse_events({**GOOD, "event_type": "order", "value": 19.99})[0].value == 19.99
    assert parse_events({**GOOD, "value": 3})[0].value == 3.0
    for bad in (float("nan"), float("inf")):
        [problem] = errors_of({**GOOD, "value": bad})
        assert problem["field"] == "value"
