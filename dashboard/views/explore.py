"""Explore: events and visitors over time, by event type, variant and time range."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from core.experiments import DEFAULT_EXPERIMENT
from dashboard.api import Api
from dashboard.charts import explore_chart, single_bucket, timeseries_frame
from dashboard.formatting import variant_order
from dashboard.session import current_api
from dashboard.views import event_type_filter, fetched

TABLE_COLUMNS = {"bucket": "Time (UTC)", "variant": "Variant", "events": "Events", "visitors": "Unique visitors"}


def render(api: Api) -> None:
    st.header("Explore")
    top = st.columns(3)
    experiment = top[0].text_input("Experiment", value=DEFAULT_EXPERIMENT, key="explore_experiment")
    event_type = event_type_filter(api, top[1], "explore_event_type")
    interval = top[2].radio("Interval", ["hour", "day"], horizontal=True, key="explore_interval")
    today = datetime.now(UTC).date()
    span = st.date_input("Time range (UTC)", value=(today - timedelta(days=7), today), key="explore_range")
    measure = st.radio("Measure", ["events", "visitors"], horizontal=True, key="explore_measure")
    start, end = (span if isinstance(span, tuple) and len(span) == 2 else (today - timedelta(days=7), today))
    since = datetime.combine(start, time.min, UTC).isoformat()
    until = datetime.combine(end + timedelta(days=1), time.min, UTC).isoformat()
    query = {"experiment": experiment, "event_type": event_type, "since": since, "until": until}
    series = fetched("Time series unavailable", api.timeseries, interval=interval, **query)
    if series is None:
        return
    frame = timeseries_frame(series)
    if interval == "day" and not frame.empty and single_bucket(frame):
        finer = fetched("Time series unavailable", api.timeseries, interval="hour", **query)
        if finer is not None:
            frame = timeseries_frame(finer)
            st.caption("One day of data in this range: shown by hour.")
    variants = variant_order(frame["variant"].unique())
    if st.session_state.get("explore_variant_options") != variants:
        # other variants on offer (another experiment, range or event type): start from all of them,
        # not from a pick made among the others (an empty one would hide every series)
        st.session_state["explore_variant_options"] = variants
        st.session_state.pop("explore_variants", None)
    chosen = st.multiselect("Variants", variants, default=variants, key="explore_variants")
    frame = frame[frame["variant"].isin(chosen)]
    if frame.empty:
        st.info("No events in this range.")
        return
    st.altair_chart(explore_chart(frame, measure, variants), width="stretch")
    st.dataframe(frame.rename(columns=TABLE_COLUMNS), hide_index=True, width="stretch",
                 column_config={"Time (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})


render(current_api())
