import io
import re

import pandas as pd
import streamlit as st

from tests.helpers import charts, open_view, post_events, shown


def arm(variant, visitors, conversions, metric="form_submit"):
    events = [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "page_view"} for i in range(visitors)]
    events += [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": metric} for i in range(conversions)]
    return events


def test_srm_banner_and_verdict(backends):
    _, metrics = backends
    post_events(metrics, arm("A", 600, 60) + arm("B", 400, 50))
    at = open_view("Experiment results")
    assert any(e.value.startswith("Sample ratio mismatch (p = ") for e in at.error)
    assert any(shown(e.value).startswith("Sample ratio mismatch: visitors") for e in at.error)
    assert [h.value for h in at.subheader] == ["Do not decide yet", "Sample ratio mismatch", "Plan a test"]


def test_balanced_split_has_no_banner_and_no_early_winner(backends):
    _, metrics = backends
    post_events(metrics, arm("A", 90, 5) + arm("B", 90, 40))
    at = open_view("Experiment results")
    assert not any("Sample ratio mismatch" in e.value for e in at.error)
    assert any(shown(i.value).startswith("Not enough data yet:") for i in at.info)
    assert [h.value for h in at.subheader] == ["Keep running", "Not enough data yet", "Plan a test"]
    table = at.dataframe[0].value
    assert list(table["Variant"]) == ["A (control)", "B"] and list(table["Conversions"]) == [5, 40]
    assert [rate.split(" ")[0] for rate in table["Conversion rate"]] == ["5.6%", "44.4%"]
    assert re.fullmatch(r"5\.6% \(\d+\.\d% to \d+\.\d%\)", table["Conversion rate"][0])
    assert table["Uplift vs control"][0] == "control"
    assert re.fullmatch(r"\+700\.0% \([+-]\d+\.\d% to \+\d+\.\d%\)", table["Uplift vs control"][1])
    assert len(charts(at)) >= 3  # rate with intervals, forest plot, cumulative/funnel


def test_a_clear_winner_is_named(backends):
    _, metrics = backends
    post_events(metrics, arm("A", 1500, 150) + arm("B", 1500, 300))
    at = open_view("Experiment results")
    assert any(shown(s.value).startswith("B beats A on form_submit: +100.0%") for s in at.success)
    assert [shown(h.value) for h in at.subheader] == ["Ship B", "Winner: B", "Plan a test"]
    assert list(at.dataframe[0].value["Significance"]) == ["control", "better"]


def test_csv_download_holds_the_results(backends, monkeypatch):
    _, metrics = backends
    post_events(metrics, arm("A", 120, 30) + arm("B", 110, 33))
    captured = {}
    original = st.download_button

    def spy(label, data, *args, **kwargs):
        captured["data"], captured["file_name"] = data, kwargs.get("file_name")
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    at = open_view("Experiment results")
    assert at.get("download_button")
    frame = pd.read_csv(io.BytesIO(captured["data"]))
    assert captured["file_name"] == "landing-form_submit-results.csv"
    assert list(frame["variant"]) == ["A", "B"]
    assert list(frame["visitors"]) == [120, 110] and list(frame["conversions"]) == [30, 33]
    assert frame.loc[1, "p_value"] > 0 and "chance_to_beat_control" in frame.columns


def test_metric_selector_switches_the_readout(backends):
    _, metrics = backends
    post_events(metrics, arm("A", 50, 10, "cta_click") + arm("B", 50, 20, "cta_click"))
    at = open_view("Experiment results")
    at.selectbox(key="results_metric").set_value("cta_click").run()
    assert list(at.dataframe[0].value["Conversions"]) == [10, 20]


def test_results_backend_down(down):
    at = open_view("Experiment results")
    assert not at.exception
    assert any("unreachable" in e.value for e in at.error)


def test_breakdown_by_device_shows_each_segment_and_its_uplift(backends):
    _, metrics = backends

    def segment(variant, count, converted, device):
        events = [{"visitor_id": f"{device}{variant}{i}", "variant": variant, "event_type": "page_view",
                   "context": {"device": device}} for i in range(count)]
        return events + [{"visitor_id": f"{device}{variant}{i}", "variant": variant, "event_type": "form_submit"}
                         for i in range(converted)]

    post_events(metrics, segment("A", 300, 30, "mobile") + segment("B", 300, 60, "mobile")
                + segment("A", 40, 4, "tablet") + segment("B", 40, 8, "tablet"))
    at = open_view("Experiment results")
    at.selectbox(key="results_dimension").set_value("Device").run()
    assert not at.exception
    assert any("exploratory" in i.value for i in at.info)
    table = at.dataframe[1].value
    assert list(zip(table["Segment"], table["Variant"], table["Visitors"], table["Conversions"], strict=True)) == [
        ("mobile", "A", 300, 30), ("mobile", "B", 300, 60), ("tablet", "A", 40, 4), ("tablet", "B", 40, 8)]
    assert list(table["Uplift vs control"])[1] == "+100.0%"
    assert list(table["Judged"]) == ["yes", "yes", "too small", "too small"]
    assert list(table["Adjusted p-value"])[3] == "not judged"
    assert any("Uplift against control per segment" in chart.proto.spec for chart in charts(at))
