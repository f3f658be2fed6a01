import pandas as pd

from dashboard.charts import (
    conversion_chart,
    conversion_frame,
    cumulative_chart,
    cumulative_frame,
    events_chart,
    explore_chart,
    forest_chart,
    funnel_frame,
    matrix_frame,
    rate_interval_chart,
    results_frame,
)
from dashboard.formatting import PALETTE

STATS = {
    "matrix": [{"variant": "A", "event_type": "page_view", "events": 6, "visitors": 4},
               {"variant": "B", "event_type": "cta_click", "events": 2, "visitors": 2}],
    "conversion": {"B": {"visitors": 2, "cta_click": {"visitors": 2, "rate": 1.0},
                         "form_submit": {"visitors": 0, "rate": 0.0}},
                   "A": {"visitors": 4, "cta_click": {"visitors": 1, "rate": 0.25},
                         "form_submit": {"visitors": 0, "rate": None}}},
}


def test_matrix_and_conversion_frames():
    matrix = matrix_frame(STATS)
    assert list(matrix.columns) == ["variant", "event_type", "events", "visitors"]
    assert matrix["events"].sum() == 8
    conversion = conversion_frame(STATS)
    assert list(conversion["variant"]) == ["A", "A", "B", "B"]
    assert conversion.loc[(conversion.variant == "A") & (conversion.metric == "cta_click"), "rate"].item() == 0.25


def test_empty_stats_give_empty_frames_with_columns():
    assert list(matrix_frame({}).columns) == ["variant", "event_type", "events", "visitors"]
    assert conversion_frame({}).empty


def test_events_chart_encodes_variant_by_event_type():
    spec = events_chart(matrix_frame(STATS)).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["field"] == "event_type"
    assert spec["encoding"]["xOffset"]["field"] == "variant"
    assert spec["encoding"]["y"]["field"] == "events"
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {"variant", "events", "visitors"}


def test_events_chart_puts_registered_event_types_after_the_built_in_ones():
    stats = {"matrix": [*STATS["matrix"], {"variant": "A", "event_type": "order", "events": 1, "visitors": 1},
                        {"variant": "B", "event_type": "js_error", "events": 3, "visitors": 2}]}
    spec = events_chart(matrix_frame(stats)).to_dict()
    assert spec["encoding"]["x"]["sort"] == ["page_view", "cta_click", "form_submit", "js_error", "order"]


def test_conversion_chart_is_a_percentage():
    spec = conversion_chart(conversion_frame(STATS)).to_dict()
    assert spec["encoding"]["y"]["field"] == "rate"
    assert spec["encoding"]["y"]["axis"]["format"] == "%"


RESULTS = {"variants": [
    {"variant": "A", "visitors": 100, "conversions": 10, "rate": 0.1, "ci_low": 0.05, "ci_high": 0.17,
     "uplift": None, "uplift_ci_low": None, "uplift_ci_high": None},
    {"variant": "B", "visitors": 100, "conversions": 20, "rate": 0.2, "ci_low": 0.13, "ci_high": 0.29,
     "uplift": 1.0, "uplift_ci_low": 0.1, "uplift_ci_high": 1.9},
]}


def test_rate_interval_chart_has_error_bars():
    spec = rate_interval_chart(results_frame(RESULTS)).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert "errorbar" in marks and "point" in marks
    bar = next(layer for layer in spec["layer"] if "errorbar" in str(layer["mark"]))
    assert bar["encoding"]["y"]["field"] == "ci_low" and bar["encoding"]["y2"]["field"] == "ci_high"


def test_forest_chart_plots_only_treatments_against_zero():
    chart = forest_chart(results_frame(RESULTS))
    spec = chart.to_dict()
    assert len(spec["layer"]) == 3
    data = chart.data if isinstance(chart.data, pd.DataFrame) else chart.layer[0].data
    assert list(data["variant"]) == ["B"]
    zero = chart.layer[2].data
    assert list(zero["zero"]) == [0.0]


def test_cumulative_and_funnel_frames():
    series = cumulative_frame({"series": [{"bucket": "2026-01-01T00:00:00Z", "variant": "A", "visitors": 2,
                                            "conversions": 1, "rate": 0.5}]})
    assert str(series["bucket"].dtype).startswith("datetime64")
    funnel = funnel_frame({"variants": [{"variant": "A", "steps": [
        {"step": "page_view", "visitors": 10, "conversion_from_previous": None, "conversion_from_start": 1.0},
        {"step": "cta_click", "visitors": 4, "conversion_from_previous": 0.4, "conversion_from_start": 0.4}]}]})
    assert list(funnel["visitors"]) == [10, 4]


def test_explore_chart_has_legend_selection_and_tooltips():
    frame = pd.DataFrame({"bucket": pd.to_datetime(["2026-01-01T00:00:00Z"]), "variant": ["A"], "events": [3],
                          "visitors": [2]})
    spec = explore_chart(frame, "visitors").to_dict()
    assert spec["encoding"]["y"]["field"] == "visitors"
    assert any(p.get("bind") == "legend" for p in spec["params"])
    assert "condition" in spec["encoding"]["opacity"]


def test_one_time_bucket_draws_bars_not_a_dot_per_variant():
    one = pd.DataFrame({"bucket": pd.to_datetime(["2026-01-01T00:00:00Z"] * 2), "variant": ["A", "B"],
                        "events": [3, 4], "visitors": [2, 3], "conversions": [1, 1], "rate": [0.5, 0.33]})
    assert cumulative_chart(one).to_dict()["mark"]["type"] == "bar"
    assert explore_chart(one).to_dict()["mark"]["type"] == "bar"
    two = pd.concat([one, one.assign(bucket=pd.to_datetime(["2026-01-01T01:00:00Z"] * 2))])
    assert cumulative_chart(two).to_dict()["mark"]["type"] == "line"
    assert explore_chart(two).to_dict()["mark"]["type"] == "line"


def test_a_variant_has_the_same_colour_in_every_chart_whatever_the_filter():
    spec = explore_chart(pd.DataFrame({"bucket": pd.to_datetime(["2026-01-01T00:00:00Z"]), "variant": ["C"],
                                       "events": [3], "visitors": [2]}), variants=["A", "B", "C"]).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"] == ["A", "B", "C"] and scale["range"][2] == PALETTE[2]
    forest = forest_chart(results_frame(RESULTS), ["A", "B"]).to_dict()
    assert forest["layer"][1]["encoding"]["color"]["scale"]["range"][:2] == list(PALETTE[:2])
    assert forest["layer"][0]["encoding"]["x"]["scale"]["zero"] is True  # 0% always on the axis


SEGMENTS = {"segments": [
    {"value": "mobile", "judged": True, "variants": [
        {"variant": "A", "visitors": 300, "conversions": 30, "rate": 0.1},
        {"variant": "B", "visitors": 300, "conversions": 60, "rate": 0.2, "uplift": 1.0, "uplift_ci_low": 0.5,
         "uplift_ci_high": 1.5, "p_value": 0.001, "p_value_adjusted": 0.002, "significant": True}]},
    {"value": "tablet", "judged": False, "variants": [
        {"variant": "A", "visitors": 40, "conversions": 4, "rate": 0.1},
        {"variant": "B", "visitors": 40, "conversions": 2, "rate": 0.05, "uplift": -0.5, "uplift_ci_low": -1.2,
         "uplift_ci_high": 0.2, "p_value": 0.4, "p_value_adjusted": None, "significant": None}]}]}


def test_segment_frame_and_uplift_chart():
    from dashboard.charts import segment_uplift_chart, segments_frame

    frame = segments_frame(SEGMENTS)
    assert list(frame["segment"]) == ["mobile", "mobile", "tablet", "tablet"]
    assert list(frame["judged"]) == [True, True, False, False]
    spec = segment_uplift_chart(frame, ["A", "B"]).to_dict()
    interval, point, zero = spec["layer"]
    assert interval["encoding"]["y"]["sort"] == ["mobile", "tablet"]
    assert interval["encoding"]["x"]["scale"]["zero"] is True and zero["mark"]["type"] == "rule"
    assert interval["encoding"]["opacity"]["scale"]["range"] == [1.0, 0.3]  # too small to judge: faint
    [rows] = [rows for rows in spec["datasets"].values() if rows and "uplift" in rows[0]]
    assert [row["variant"] for row in rows] == ["B", "B"]  # the control has no uplift to draw
    assert segments_frame({}).empty


def test_traffic_frame_and_chart():
    from dashboard.charts import traffic_chart, traffic_frame

    frame = traffic_frame({"values": [{"value": "google", "visitors": 8, "conversions": 2, "rate": 0.25},
                                      {"value": "(none)", "visitors": 3, "conversions": 0, "rate": 0.0}]})
    spec = traffic_chart(frame, "Visitors per source").to_dict()
    assert spec["encoding"]["y"]["sort"] == ["google", "(none)"] and spec["encoding"]["x"]["field"] == "visitors"
    assert list(traffic_frame({}).columns) == ["value", "visitors", "conversions", "rate"]
