"""Pure chart builders: API answers -> tidy DataFrames -> altair charts. No Streamlit, no HTTP.

Every chart colours variants through `variant_color`, given the experiment's variant names in a fixed
order, so a variant keeps its colour across charts and filters. Time charts with a single time bucket
draw bars instead of a lone dot per variant.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from core.events import EVENT_TYPES, METRICS
from dashboard.formatting import PALETTE, event_type_order, variant_colors, variant_order


def variant_color(frame: pd.DataFrame, variants: Sequence[str] | None = None, legend: bool = True) -> alt.Color:
    """The variant colour channel: the same colour for the same name, whatever the frame holds."""
    names = variant_order(frame["variant"].unique() if "variant" in frame else [], variants or ())
    colors = variant_colors(names)
    return alt.Color("variant:N", title="Variant", legend=alt.Legend() if legend else None,
                     scale=alt.Scale(domain=list(colors), range=list(colors.values())))


def matrix_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """The /stats matrix as rows of (variant, event_type, events, visitors)."""
    frame = pd.DataFrame(stats.get("matrix", []), columns=["variant", "event_type", "events", "visitors"])
    return frame.astype({"events": "int64", "visitors": "int64"})


def conversion_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Conversion per variant and metric: (variant, metric, visitors, converted, rate)."""
    rows = []
    for variant, conv in sorted(stats.get("conversion", {}).items()):
        for metric in METRICS:
            rows.append({"variant": variant, "metric": metric, "visitors": conv["visitors"],
                         "converted": conv[metric]["visitors"], "rate": conv[metric]["rate"]})
    return pd.DataFrame(rows, columns=["variant", "metric", "visitors", "converted", "rate"])


def events_chart(matrix: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.Chart:
    """Events per variant, grouped by event type (the built-in ones first, then the registered ones)."""
    return (
        alt.Chart(matrix, title="Events per variant and event type")
        .mark_bar()
        .encode(
            x=alt.X("event_type:N", title="Event type", sort=event_type_order(matrix["event_type"])),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("events:Q", title="Events"),
            color=variant_color(matrix, variants),
            tooltip=["variant", "event_type", "events", "visitors"],
        )
    )


def conversion_chart(conversion: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.Chart:
    """Conversion rate per variant for each metric."""
    return (
        alt.Chart(conversion, title="Conversion rate per variant")
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title="Metric"),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("rate:Q", title="Conversion rate", axis=alt.Axis(format="%")),
            color=variant_color(conversion, variants),
            tooltip=["variant", "metric", "visitors", "converted", alt.Tooltip("rate:Q", format=".1%")],
        )
    )


RESULT_COLUMNS = ["variant", "visitors", "conversions", "rate", "ci_low", "ci_high", "uplift", "uplift_ci_low",
                  "uplift_ci_high", "p_value", "p_value_adjusted", "p_value_sequential", "chance_to_beat_control",
                  "significant"]


def results_frame(results: dict[str, Any]) -> pd.DataFrame:
    """The readout's numbers, one row per variant (for the charts and the CSV download)."""
    return pd.DataFrame(results.get("variants", []), columns=RESULT_COLUMNS)


def rate_interval_chart(frame: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.LayerChart:
    """Conversion rate per variant with its 95% Wilson interval as error bars."""
    data = frame.dropna(subset=["rate"])
    base = alt.Chart(data, title="Conversion rate with 95% interval").encode(
        x=alt.X("variant:N", title="Variant", sort=list(variants) if variants else "ascending"),
        tooltip=[alt.Tooltip("variant", title="Variant"), alt.Tooltip("visitors", title="Visitors"),
                 alt.Tooltip("conversions", title="Conversions"),
                 alt.Tooltip("rate:Q", format=".1%", title="Conversion rate"),
                 alt.Tooltip("ci_low:Q", format=".1%", title="Interval from"),
                 alt.Tooltip("ci_high:Q", format=".1%", title="Interval to")],
    )
    points = base.mark_point(filled=True, size=90).encode(
        y=alt.Y("rate:Q", title="Conversion rate", axis=alt.Axis(format="%")),
        color=variant_color(frame, variants, legend=False),
    )
    bars = base.mark_errorbar(ticks=True).encode(y=alt.Y("ci_low:Q", title="Conversion rate"), y2="ci_high:Q")
    return bars + points


def forest_chart(frame: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.LayerChart:
    """Relative uplift of each variant against control: its interval as a bar around a solid 0% line
    that always shows (the scale includes zero), and the estimate as a point."""
    data = frame.dropna(subset=["uplift"])
    color = variant_color(frame, variants, legend=False)
    base = alt.Chart(data, title="Uplift against control (95% interval)").encode(
        y=alt.Y("variant:N", title="Variant", sort=list(variants) if variants else "ascending"),
        tooltip=[alt.Tooltip("variant", title="Variant"), alt.Tooltip("uplift:Q", format="+.1%", title="Uplift"),
                 alt.Tooltip("uplift_ci_low:Q", format="+.1%", title="Interval from"),
                 alt.Tooltip("uplift_ci_high:Q", format="+.1%", title="Interval to"),
                 alt.Tooltip("p_value_sequential:Q", format=".3g", title="p-value")],
    )
    interval = base.mark_bar(height=14, opacity=0.35).encode(
        x=alt.X("uplift_ci_low:Q", title="Relative uplift against control", axis=alt.Axis(format="+%"),
                scale=alt.Scale(zero=True, nice=True)),
        x2="uplift_ci_high:Q", color=color,
    )
    point = base.mark_point(filled=True, size=110, opacity=1).encode(x="uplift:Q", color=color)
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#333333", strokeWidth=1.5).encode(x="zero:Q")
    return interval + point + zero


def cumulative_frame(series: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(series.get("series", []), columns=["bucket", "variant", "visitors", "conversions", "rate"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return frame


def single_bucket(frame: pd.DataFrame) -> bool:
    """Whether a time series has one time bucket only (a line would be a dot per variant)."""
    return frame["bucket"].nunique() <= 1


def cumulative_chart(frame: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.Chart:
    """Cumulative conversion rate over time, one line per variant (bars when there is one time bucket)."""
    tooltip = [alt.Tooltip("bucket:T", title="Time"), alt.Tooltip("variant", title="Variant"),
               alt.Tooltip("visitors", title="Visitors"), alt.Tooltip("conversions", title="Conversions"),
               alt.Tooltip("rate:Q", format=".1%", title="Conversion rate")]
    y = alt.Y("rate:Q", title="Cumulative conversion", axis=alt.Axis(format="%"))
    if single_bucket(frame):
        return alt.Chart(frame, title="Conversion so far").mark_bar().encode(
            x=alt.X("variant:N", title="Variant", sort=list(variants) if variants else "ascending"), y=y,
            color=variant_color(frame, variants), tooltip=tooltip)
    return (
        alt.Chart(frame, title="Cumulative conversion over time")
        .mark_line(point=True)
        .encode(x=alt.X("bucket:T", title="Time"), y=y, color=variant_color(frame, variants), tooltip=tooltip)
    )


def funnel_frame(funnel: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"variant": v["variant"], **step}
        for v in funnel.get("variants", [])
        for step in v["steps"]
    ]
    columns = ["variant", "step", "visitors", "conversion_from_previous", "conversion_from_start"]
    return pd.DataFrame(rows, columns=columns)


def funnel_chart(frame: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.Chart:
    return (
        alt.Chart(frame, title="Funnel: " + " → ".join(EVENT_TYPES))
        .mark_bar()
        .encode(
            x=alt.X("step:N", sort=list(EVENT_TYPES), title="Step"),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("visitors:Q", title="Unique visitors"),
            color=variant_color(frame, variants),
            tooltip=["variant", "step", "visitors", alt.Tooltip("conversion_from_previous:Q", format=".1%"),
                     alt.Tooltip("conversion_from_start:Q", format=".1%")],
        )
    )


def timeseries_frame(series: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(series.get("series", []), columns=["bucket", "variant", "events", "visitors"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return frame


def explore_chart(frame: pd.DataFrame, measure: str = "events", variants: Sequence[str] | None = None) -> alt.Chart:
    """Events or visitors per time bucket and variant; click the legend to highlight a variant (bars
    per variant when there is one time bucket)."""
    pick = alt.selection_point(fields=["variant"], bind="legend")
    tooltip = [alt.Tooltip("bucket:T", title="Time"), alt.Tooltip("variant", title="Variant"),
               alt.Tooltip("events", title="Events"), alt.Tooltip("visitors", title="Visitors")]
    y = alt.Y(f"{measure}:Q", title=measure.capitalize())
    chart = alt.Chart(frame, title=f"{measure.capitalize()} over time")
    if single_bucket(frame):
        chart = chart.mark_bar().encode(x=alt.X("variant:N", title="Variant"))
    else:
        chart = chart.mark_line(point=True).encode(x=alt.X("bucket:T", title="Time"))
    return (
        chart.encode(y=y, color=variant_color(frame, variants),
                     opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)), tooltip=tooltip)
        .add_params(pick)
        .interactive()
    )


SEGMENT_COLUMNS = ["segment", "judged", "variant", "visitors", "conversions", "rate", "uplift", "uplift_ci_low",
                   "uplift_ci_high", "p_value", "p_value_adjusted", "significant"]


def segments_frame(results: dict[str, Any]) -> pd.DataFrame:
    """A results?dimension= answer as one row per (segment, variant), the largest segments first."""
    rows = [{"segment": segment["value"], "judged": segment["judged"],
             **{column: variant.get(column) for column in SEGMENT_COLUMNS[2:]}}
            for segment in results.get("segments", []) for variant in segment["variants"]]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def segment_uplift_chart(frame: pd.DataFrame, variants: Sequence[str] | None = None) -> alt.LayerChart:
    """Each variant's uplift against control per segment: its interval as a bar and the estimate as a
    point around a 0% line that always shows; segments too small to judge drawn faint."""
    data = frame.dropna(subset=["uplift"]).assign(
        judged_text=lambda f: f["judged"].map({True: "judged", False: "too small to judge"}))
    color = variant_color(frame[frame["uplift"].notna()], variants, legend=True)
    base = alt.Chart(data, title="Uplift against control per segment (95% interval)").encode(
        y=alt.Y("segment:N", title="Segment", sort=list(dict.fromkeys(frame["segment"]))),
        yOffset=alt.YOffset("variant:N"),
        opacity=alt.Opacity("judged_text:N", title="Segment", scale=alt.Scale(
            domain=["judged", "too small to judge"], range=[1.0, 0.3])),
        tooltip=[alt.Tooltip("segment", title="Segment"), alt.Tooltip("variant", title="Variant"),
                 alt.Tooltip("visitors", title="Visitors"),
                 alt.Tooltip("uplift:Q", format="+.1%", title="Uplift"),
                 alt.Tooltip("uplift_ci_low:Q", format="+.1%", title="Interval from"),
                 alt.Tooltip("uplift_ci_high:Q", format="+.1%", title="Interval to"),
                 alt.Tooltip("p_value_adjusted:Q", format=".3g", title="Adjusted p-value"),
                 alt.Tooltip("judged_text:N", title="Judged")],
    )
    interval = base.mark_bar(height=8).encode(
        x=alt.X("uplift_ci_low:Q", title="Relative uplift against control", axis=alt.Axis(format="+%"),
                scale=alt.Scale(zero=True, nice=True)),
        x2="uplift_ci_high:Q", color=color)
    point = base.mark_point(filled=True, size=70).encode(x="uplift:Q", color=color)
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#333333", strokeWidth=1.5).encode(x="zero:Q")
    return interval + point + zero


def traffic_frame(traffic: dict[str, Any]) -> pd.DataFrame:
    """A /stats/traffic answer as rows of (value, visitors, conversions, rate), most visitors first."""
    frame = pd.DataFrame(traffic.get("values", []), columns=["value", "visitors", "conversions", "rate"])
    return frame.astype({"visitors": "int64", "conversions": "int64"})


def traffic_chart(frame: pd.DataFrame, title: str) -> alt.Chart:
    """Visitors per value as horizontal bars, most first; conversions and their rate in the tooltip."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar(color=PALETTE[0])
        .encode(
            y=alt.Y("value:N", title=None, sort=list(frame["value"])),
            x=alt.X("visitors:Q", title="Visitors"),
            tooltip=[alt.Tooltip("value", title="Value"), alt.Tooltip("visitors", title="Visitors"),
                     alt.Tooltip("conversions", title="Conversions"),
                     alt.Tooltip("rate:Q", format=".1%", title="Conversion rate")],
        )
    )
