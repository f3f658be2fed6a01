"""Explore: events and visitors over time, by event type, variant and time range."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from core.events import EVENT_TYPES
from core.experiments import DEFAULT_EXPERIMENT
from dashboard.api import Api
from dashboard.charts import explore_chart, timeseries_frame
from dashboard.views import fetched


def render(api: Api) -> None:
    st.header("Explore")
    top = st.columns(3)
    experiment = top[0].text_input("Experiment", value=DEFAULT_EXPERIMENT, key="explore_experiment")
    event_type = top[1].selectbox("Event type", ["All", *EVENT_TYPES], key="explore_event_type")
    interval = top[2].radio("Interval", ["hour", "day"], horizontal=True, key="explore_interval")
    today = datetime.now(UTC).date()
    span = st.date_input("Time range (UTC)", value=(today - timedelta(days=7), today), key="explore_range")
    measure = st.radio("Measure", ["events", "visitors"], horizontal=True, key="explore_measure")
    start, end = (span if isinstance(span, tuple) and len(span) == 2 else (today - timedelta(days=7), today))
    since = datetime.combine(start, time.min, UTC).isoformat()
    until = datetime.combine(end + timedelta(days=1), time.min, UTC).isoformat()
    series = fetched("Time series unavailable", api.timeseries, experiment=experiment, event_type=event_type,
                     interval=interval, since=since, until=until)
    if series is None:
        return
    frame = timeseries_frame(series)
    variants = sorted(frame["variant"].unique())
    chosen = st.multiselect("Variants", variants, default=variants, key="explore_variants")
    frame = frame[frame["variant"].isin(chosen)]
    if frame.empty:
        st.info("No events in this range.")
        return
    st.altair_chart(explore_chart(frame, measure), width="stretch")
    st.dataframe(frame, hide_index=True, width="stretch")



