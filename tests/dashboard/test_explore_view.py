from datetime import UTC, datetime, timedelta

from tests.helpers import charts, open_view, post_events


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
