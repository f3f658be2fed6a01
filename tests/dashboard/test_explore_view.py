from datetime import UTC, datetime, timedelta

from tests.helpers import charts, open_view, post_events, register_event_types


def test_explore_draws_the_time_series_with_filters(backends):
    _, metrics = backends
    now = datetime.now(UTC)
    events = [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "page_view",
               "timestamp": (now - timedelta(hours=i % 3)).isoformat()} for i in range(12)]
    events += [{"visitor_id": "v0", "variant": "A", "event_type": "cta_click"}]
    post_events(metrics, events)
    at = open_view("Explore")
    assert len(charts(at)) == 1
    table = at.dataframe[0].value
    assert table["Events"].sum() == 13
    at.selectbox(key="explore_event_type").set_value("cta_click").run()
    assert at.dataframe[0].value["Events"].sum() == 1
    at.multiselect(key="explore_variants").set_value(["B"]).run()
    assert any("No events" in i.value for i in at.info)


def test_explore_without_events(backends):
    at = open_view("Explore")
    assert not charts(at)
    assert any("No events" in i.value for i in at.info)


def test_explore_filters_by_a_registered_event_type(backends):
    _, metrics = backends
    register_event_types(metrics, "order")
    now = datetime.now(UTC)
    events = [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "page_view"} for i in range(6)]
    events += [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "order", "value": 9.5,
                "timestamp": (now - timedelta(hours=hours)).isoformat()}
               for i, hours in [(0, 0), (0, 2), (2, 2), (1, 0)]]
    post_events(metrics, events)
    at = open_view("Explore")
    assert at.selectbox(key="explore_event_type").options[-2:] == ["form_submit", "order"]
    at.selectbox(key="explore_event_type").set_value("order").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value  # by hour: A has v0 now, v0 and v2 two hours ago; B has v1 now
    assert sorted(zip(table["Variant"], table["Events"], table["Unique visitors"], strict=True)) == [
        ("A", 1, 1), ("A", 2, 2), ("B", 1, 1)]


def test_explore_offers_every_variant_again_when_the_experiment_changes(backends):
    _, metrics = backends
    post_events(metrics, [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "page_view"}
                          for i in range(4)])
    post_events(metrics, [{"visitor_id": f"w{i}", "experiment": "hero", "variant": ["control", "bold"][i % 2],
                           "event_type": "page_view"} for i in range(6)])
    at = open_view("Explore")
    at.multiselect(key="explore_variants").set_value([]).run()
    assert any("No events" in i.value for i in at.info)
    at.text_input(key="explore_experiment").set_value("hero").run()
    assert sorted(at.multiselect(key="explore_variants").value) == ["bold", "control"]
    assert at.dataframe[0].value["Events"].sum() == 6
