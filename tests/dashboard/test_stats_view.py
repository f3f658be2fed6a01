from sqlalchemy import text

from tests.helpers import charts, open_view, post_events, register_event_types


def seed(metrics):
    events = [{"visitor_id": f"a{i}", "variant": "A", "event_type": "page_view"} for i in range(6)]
    events += [{"visitor_id": f"a{i}", "variant": "A", "event_type": "cta_click"} for i in range(3)]
    events += [{"visitor_id": f"b{i}", "variant": "B", "event_type": "page_view"} for i in range(4)]
    events += [{"visitor_id": "b0", "variant": "B", "event_type": "form_submit"}]
    post_events(metrics, events)


def test_numbers_and_charts_match_the_events(backends):
    _, metrics = backends
    seed(metrics)
    at = open_view("Stats")
    values = {m.label: m.value for m in at.metric}
    assert values == {"Events": "14", "Unique visitors": "10"}
    assert len(charts(at)) == 2
    matrix = at.dataframe[0].value
    row = matrix[(matrix["Variant"] == "A") & (matrix["Event type"] == "cta_click")].iloc[0]
    assert (row["Events"], row["Unique visitors"]) == (3, 3)


def test_filters_narrow_the_numbers(backends):
    _, metrics = backends
    seed(metrics)
    at = open_view("Stats")
    at.selectbox(key="stats_variant").set_value("B").run()
    assert {m.label: m.value for m in at.metric}["Events"] == "5"
    at.selectbox(key="stats_event_type").set_value("page_view").run()
    assert {m.label: m.value for m in at.metric}["Events"] == "4"


def test_no_events_says_so(backends):
    at = open_view("Stats")
    assert any("No events" in i.value for i in at.info)
    assert not charts(at)


def test_backend_down_is_said_plainly(down):
    at = open_view("Stats")
    assert not at.exception
    assert any("unreachable" in e.value for e in at.error)


def test_cleared_experiment_counts_each_visitor_once(backends):
    _, metrics = backends
    seed(metrics)  # ten visitors in "landing"
    events = [{"visitor_id": f"a{i}", "variant": "B", "event_type": "page_view", "experiment": "hero"}
              for i in range(4)]  # four of them also in "hero"
    events += [{"visitor_id": "h0", "variant": "A", "event_type": "page_view", "experiment": "hero"}]
    post_events(metrics, events)
    at = open_view("Stats")
    at.text_input(key="stats_experiment").set_value("").run()
    assert {m.label: m.value for m in at.metric} == {"Events": "19", "Unique visitors": "11"}
    matrix = at.dataframe[0].value
    views = matrix[matrix["Event type"] == "page_view"].set_index("Variant")["Unique visitors"].to_dict()
    assert views == {"A": 7, "B": 8}  # a0-a5 and h0 in A; b0-b3 and a0-a3 in B


def test_auto_refresh_keeps_the_view(backends):
    _, metrics = backends
    seed(metrics)
    at = open_view("Stats")
    at.sidebar.toggle(key="auto_refresh").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric} == {"Events": "14", "Unique visitors": "10"}


def test_a_segment_narrows_the_numbers_to_its_visitors_and_their_events(backends):
    _, metrics = backends
    seed(metrics)  # ten visitors without a context: in no segment
    events = [{"visitor_id": f"m{i}", "variant": "A", "event_type": "page_view", "context": {"device": "mobile"}}
              for i in range(3)]
    events += [{"visitor_id": "m0", "variant": "A", "event_type": "cta_click"},
               {"visitor_id": "d0", "variant": "B", "event_type": "page_view", "context": {"device": "desktop"}}]
    post_events(metrics, events)
    at = open_view("Stats")
    at.selectbox(key="stats_dimension").set_value("Device").run()
    assert at.selectbox(key="stats_segment_value").options == ["mobile", "desktop"]
    assert {m.label: m.value for m in at.metric} == {"Events": "4", "Unique visitors": "3"}
    at.selectbox(key="stats_segment_value").set_value("desktop").run()
    assert {m.label: m.value for m in at.metric} == {"Events": "1", "Unique visitors": "1"}
    at.selectbox(key="stats_dimension").set_value("All").run()
    assert {m.label: m.value for m in at.metric} == {"Events": "19", "Unique visitors": "14"}


def test_a_dimension_nobody_has_says_every_visitor_is_shown(backends):
    _, metrics = backends
    seed(metrics)  # no visitor has a context
    at = open_view("Stats")
    at.selectbox(key="stats_dimension").set_value("Device").run()
    assert at.selectbox(key="stats_segment_value").options == []
    assert [c.value for c in at.caption if "No visitor has a value for Device yet" in c.value]
    assert {m.label: m.value for m in at.metric} == {"Events": "14", "Unique visitors": "10"}


def orders():
    """Orders (a registered event type): a0 twice and a1 once in A, b0 once in B."""
    return [{"visitor_id": visitor, "variant": visitor[0].upper(), "event_type": "order", "value": 20.0}
            for visitor in ("a0", "a0", "a1", "b0")]


def test_a_registered_event_type_is_offered_after_the_built_in_ones_and_filters(backends):
    _, metrics = backends
    register_event_types(metrics, "order", "js_error")
    seed(metrics)
    post_events(metrics, orders())
    at = open_view("Stats")
    assert at.selectbox(key="stats_event_type").options == ["All", "page_view", "cta_click", "form_submit",
                                                            "js_error", "order"]
    assert {m.label: m.value for m in at.metric} == {"Events": "18", "Unique visitors": "10"}
    at.selectbox(key="stats_event_type").set_value("order").run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric} == {"Events": "4", "Unique visitors": "3"}
    matrix = at.dataframe[0].value
    assert sorted(matrix.itertuples(index=False, name=None)) == [("A", "order", 3, 2), ("B", "order", 1, 1)]
    at.selectbox(key="stats_variant").set_value("A").run()
    assert {m.label: m.value for m in at.metric} == {"Events": "3", "Unique visitors": "2"}


def test_without_the_catalogue_the_built_in_event_types_are_offered(backends):
    _, metrics = backends
    register_event_types(metrics, "order")
    seed(metrics)
    with metrics.app.extensions["catalogue_store"].engine.begin() as conn:
        conn.execute(text("DROP TABLE event_types"))  # GET /event-types now fails; /stats does not read it
    at = open_view("Stats")
    assert at.selectbox(key="stats_event_type").options == ["All", "page_view", "cta_click", "form_submit"]
    assert [c.value for c in at.caption if c.value.startswith("Only the built-in event types are listed: "
                                                               "metrics\\_service")]
    assert not at.error
    at.selectbox(key="stats_event_type").set_value("cta_click").run()
    assert {m.label: m.value for m in at.metric} == {"Events": "3", "Unique visitors": "3"}
