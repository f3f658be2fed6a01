from tests.helpers import charts, open_view, post_events


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
    row = matrix[(matrix["variant"] == "A") & (matrix["event_type"] == "cta_click")].iloc[0]
    assert (row["events"], row["visitors"]) == (3, 3)


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
