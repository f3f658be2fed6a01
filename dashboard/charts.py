"""Pure chart builders: API answers -> tidy DataFrames -> altair charts. No Streamlit, no HTTP."""
from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from core.events import EVENT_TYPES, METRICS


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


def events_chart(matrix: pd.DataFrame) -> alt.Chart:
    """Events per variant, grouped by event type."""
    return (
        alt.Chart(matrix, title="Events per variant and event type")
        .mark_bar()
        .encode(
            x=alt.X("event_type:N", title="Event type", sort=list(EVENT_TYPES)),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("events:Q", title="Events"),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=["variant", "event_type", "events", "visitors"],
        )
    )


def conversion_chart(conversion: pd.DataFrame) -> alt.Chart:
    """Conversion rate per variant for each metric."""
    return (
        alt.Chart(conversion, title="Conversion rate per variant")
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title="Metric"),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("rate:Q", title="Conversion rate", axis=alt.Axis(format="%")),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=["variant", "metric", "visitors", "converted", alt.Tooltip("rate:Q", format=".2%")],
        )
    )


RESULT_COLUMNS = ["variant", "visitors", "conversions", "rate", "ci_low", "ci_high", "uplift", "uplift_ci_low",
                  "uplift_ci_high", "p_value", "p_value_adjusted", "p_value_sequential", "chance_to_beat_control"]


def results_frame(results: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(results.get("variants", []), columns=RESULT_COLUMNS)


def rate_interval_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Conversion rate per variant with its 95% Wilson interval as error bars."""
    data = frame.dropna(subset=["rate"])
    base = alt.Chart(data, title="Conversion rate with 95% interval").encode(
        x=alt.X("variant:N", title="Variant"),
        tooltip=["variant", "visitors", "conversions", alt.Tooltip("rate:Q", format=".2%"),
                 alt.Tooltip("ci_low:Q", format=".2%"), alt.Tooltip("ci_high:Q", format=".2%")],
    )
    points = base.mark_point(filled=True, size=90).encode(
        y=alt.Y("rate:Q", title="Conversion rate", axis=alt.Axis(format="%")),
        color=alt.Color("variant:N", legend=None),
    )
    bars = base.mark_errorbar(ticks=True).encode(y=alt.Y("ci_low:Q", title="Conversion rate"), y2="ci_high:Q")
    return bars + points


def forest_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Relative uplift of each variant against control with its interval, and a rule at zero."""
    data = frame.dropna(subset=["uplift"])
    base = alt.Chart(data, title="Uplift against control (95% interval)").encode(
        y=alt.Y("variant:N", title="Variant"),
        tooltip=["variant", alt.Tooltip("uplift:Q", format="+.1%"), alt.Tooltip("uplift_ci_low:Q", format="+.1%"),
                 alt.Tooltip("uplift_ci_high:Q", format="+.1%"), alt.Tooltip("p_value_sequential:Q", format=".3g")],
    )
    interval = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("uplift_ci_low:Q", title="Relative uplift", axis=alt.Axis(format="%")), x2="uplift_ci_high:Q"
    )
    point = base.mark_point(filled=True, size=90).encode(x="uplift:Q", color=alt.Color("variant:N", legend=None))
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="zero:Q")
    return interval + point + zero


def cumulative_frame(series: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(series.get("series", []), columns=["bucket", "variant", "visitors", "conversions", "rate"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return frame


def cumulative_chart(frame: pd.DataFrame) -> alt.Chart:
    """Cumulative conversion rate over time, one line per variant."""
    return (
        alt.Chart(frame, title="Cumulative conversion over time")
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title="Time"),
            y=alt.Y("rate:Q", title="Cumulative conversion", axis=alt.Axis(format="%")),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=[alt.Tooltip("bucket:T"), "variant", "visitors", "conversions",
                     alt.Tooltip("rate:Q", format=".2%")],
        )
    )


def funnel_frame(funnel: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"variant": v["variant"], **step}
        for v in funnel.get("variants", [])
        for step in v["steps"]
    ]
    columns = ["variant", "step", "visitors", "conversion_from_previous", "conversion_from_start"]
    return pd.DataFrame(rows, columns=columns)


def funnel_chart(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame, title="Funnel: " + " → ".join(EVENT_TYPES))
        .mark_bar()
        .encode(
            x=alt.X("step:N", sort=list(EVENT_TYPES), title="Step"),
            xOffset=alt.XOffset("variant:N"),
            y=alt.Y("visitors:Q", title="Unique visitors"),
            color=alt.Color("variant:N", title="Variant"),
            tooltip=["variant", "step", "visitors", alt.Tooltip("conversion_from_previous:Q", format=".1%"),
                     alt.Tooltip("conversion_from_start:Q", format=".1%")],
        )
    )


def timeseries_frame(series: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(series.get("series", []), columns=["bucket", "variant", "events", "visitors"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return frame


def explore_chart(frame: pd.DataFrame, measure: str = "events") -> alt.Chart:
    """Events or visitors per time bucket and variant; click the legend to highlight a variant."""
    pick = alt.selection_point(fields=["variant"], bind="legend")
    return (
        alt.Chart(frame, title=f"{measure.capitalize()} over time")
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title="Time"),
            y=alt.Y(f"{measure}:Q", title=measure.capitalize()),
            color=alt.Color("variant:N", title="Variant"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
            tooltip=[alt.Tooltip("bucket:T"), "variant", "events", "visitors"],
        )
        .add_params(pick)
        .interactive()
    )
