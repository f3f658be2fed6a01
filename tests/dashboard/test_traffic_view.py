"""The Traffic view: visitors, conversions and rate per source, campaign, device... from metrics_service."""
from tests.helpers import charts, open_view, post_events


def visitors(count, converted, context, prefix, experiment="landing"):
    events = [{"visitor_id": f"{prefix}{i}", "variant": "A", "event_type": "page_view", "experiment": experiment,
               "context": context} for i in range(count)]
    events += [{"visitor_id": f"{prefix}{i}", "variant": "A", "event_type": "form_submit", "experiment": experiment}
               for i in range(converted)]
    return events


def seed(metrics):
    post_events(metrics, visitors(6, 3, {"utm_source": "google", "utm_campaign": "spring", "device": "mobile"}, "g")
                + visitors(4, 1, {"utm_source": "newsletter", "device": "desktop"}, "n")
                + visitors(2, 0, {"device": "desktop"}, "d", experiment="hero"))


def test_sources_campaigns_and_devices(backends):
    _, metrics = backends
    seed(metrics)
    at = open_view("Traffic")
    assert {m.label: m.value for m in at.metric} == {"Visitors": "12"}
    table = at.dataframe[0].value
    assert list(table["Value"]) == ["google", "newsletter", "(none)"]
    assert list(table["Visitors"]) == [6, 4, 2] and list(table["Conversions"]) == [3, 1, 0]
    assert list(table["Conversion rate"]) == ["50.0%", "25.0%", "0.0%"]
    assert len(charts(at)) == 1
    at.radio(key="traffic_view").set_value("Campaigns").run()
    assert dict(zip(at.dataframe[0].value["Value"], at.dataframe[0].value["Visitors"], strict=True)) == {
        "spring": 6, "(none)": 6}
    at.radio(key="traffic_view").set_value("Devices").run()
    assert list(at.dataframe[0].value["Value"]) == ["desktop", "mobile"]  # 6 each: by name
    at.text_input(key="traffic_experiment").input("hero").run()
    assert list(at.dataframe[0].value["Visitors"]) == [2]
    at.selectbox(key="traffic_metric").set_value("cta_click").run()
    assert list(at.dataframe[0].value["Conversions"]) == [0]


def test_no_traffic_says_so_and_a_service_down_is_said_plainly(backends, monkeypatch, closed_port_url):
    import streamlit as st

    at = open_view("Traffic")
    assert any("No visitors" in i.value for i in at.info) and not charts(at)
    monkeypatch.setenv("METRICS_SERVICE_URL", closed_port_url)
    st.cache_data.clear()
    at = open_view("Traffic")
    assert any("Traffic is unavailable" in e.value and "unreachable" in e.value for e in at.error)
