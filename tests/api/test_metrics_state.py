"""Bad input never poisons metrics_service's state: null in any event field is refused naming it, no
sequence of batches (plausible or poisoned) makes a read answer 5xx, and neither does any row in the
events table, even after the aggregates are rebuilt from it."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from core.events import Event
from metrics_service.store import events

GOOD = {"visitor_id": "v1", "variant": "A", "event_type": "page_view"}
READS = ["/stats", "/stats?experiment=landing", "/stats?experiment=hero&variant=B&event_type=cta_click",
         "/stats?since=2020-01-01&until=2100-01-01", "/stats/timeseries", "/stats/timeseries?interval=day",
         "/stats/timeseries?event_type=form_submit", "/stats/funnel", "/stats/funnel?experiment=hero",
         "/experiments/landing/results?metric=cta_click", "/experiments/hero/results?metric=form_submit",
         "/experiments/landing/results?metric=cta_click&control=B&weights=A:0.5,B:0.5",
         "/experiments/landing/timeseries?metric=cta_click",
         "/experiments/hero/timeseries?metric=form_submit&interval=day"]


def assert_reads_answer(client):
    for path in READS:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.get_json())


@pytest.mark.parametrize("field", list(Event.model_fields))
def test_null_in_any_event_field_is_refused_naming_it(metrics_client, metrics_app, field):
    response = metrics_client.post("/events", json=[GOOD, {**GOOD, field: None}])
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"index": 1, "field": field, "message": "must not be null"}]
    assert metrics_app.extensions["metrics_store"].count_events() == 0


# Property: sequences of batches mixing plausible events with poisoned ones (a field set to any JSON,
# null included; an element or the whole body replaced) leave every read answering 200.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
NOW = datetime.now(UTC)


@st.composite
def plausible_event(draw) -> dict:
    pick = lambda options: draw(st.sampled_from(options))  # noqa: E731
    optional = {
        "experiment": pick(["landing", "hero"]),
        "event_id": str(uuid.UUID(int=draw(st.integers(0, 40)))),  # repeats: duplicates
        "timestamp": (NOW - timedelta(hours=draw(st.integers(0, 24 * 30)))).isoformat(),
        "properties": {"path": "/"},
        "forced": draw(st.booleans()), "in_experiment": draw(st.booleans()), "bot": draw(st.booleans()),
    }
    return {"visitor_id": f"v{draw(st.integers(0, 9))}", "variant": pick(["A", "B", "C"]),
            "event_type": pick(["page_view", "cta_click", "form_submit"]),
            **{k: v for k, v in optional.items() if draw(st.booleans())}}


@st.composite
def batches(draw):
    batch = draw(st.lists(plausible_event(), min_size=1, max_size=5))
    where = draw(st.sampled_from(["none", "field", "element", "body"]))
    if where == "field":
        index = draw(st.integers(0, len(batch) - 1))
        batch[index] = {**batch[index], draw(st.sampled_from(list(Event.model_fields))): draw(json_values)}
    elif where == "element":
        batch[draw(st.integers(0, len(batch) - 1))] = draw(json_values)
    elif where == "body":
        return draw(json_values)
    return batch


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=st.lists(batches(), min_size=1, max_size=4))
def test_no_sequence_of_batches_leaves_a_read_failing(metrics_client, sequence):
    for body in sequence:
        response = metrics_client.post("/events", json=body)
        assert response.status_code in (202, 400), (body, response.get_json())
        event(f"POST /events: {response.status_code}")
    assert_reads_answer(metrics_client)


def test_rows_written_around_ingest_never_make_a_read_fail(metrics_app, metrics_client):
    """Rows ingest would refuse, put straight into the events table, then the aggregates rebuilt from it
    (as a migration's backfill does): the reads answer, and count only what ingest would have counted."""
    store = metrics_app.extensions["metrics_store"]
    ts = int(NOW.timestamp() * 1000)
    base = {"experiment": "landing", "variant": "A", "event_type": "page_view", "visitor_id": "v",
            "ts": ts, "properties": None, "excluded": None}
    odd = [{"properties": "not json"}, {"properties": "[1, 2]"}, {"excluded": "some-other-reason"},
           {"event_type": "purchase"}, {"ts": -5}, {"ts": 10**15}, {"variant": "a b <b>", "experiment": "e x"},
           {"visitor_id": ""}, {"event_type": ""}]
    with store.engine.begin() as conn:
        conn.execute(insert(events), [{**base, **changes, "event_id": str(uuid.uuid4())} for changes in odd])
    store.rebuild_aggregates()
    assert_reads_answer(metrics_client)
    assert metrics_client.post("/events", json=[GOOD]).status_code == 202
    assert_reads_answer(metrics_client)
    counted = metrics_client.get("/stats").get_json()
    # Counted: the two property oddities, the odd names and the empty visitor id, and the event posted.
    assert counted["total_events"] == 5
    assert set(counted["by_event_type"]) == {"page_view"}
