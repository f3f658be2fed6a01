"""Traffic: where visitors come from and what they use (sources, campaigns, devices...), each with its
visitors, conversions and conversion rate (all counted by metrics_service)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from core.events import DEFAULT_METRIC, METRICS
from dashboard.api import Api
from dashboard.charts import traffic_chart, traffic_frame
from dashboard.formatting import DIMENSION_LABELS, percent
from dashboard.session import current_api
from dashboard.views import fetched

VIEWS = {"Sources": "utm_source", "Campaigns": "utm_campaign", "Devices": "device", "Referring sites": "referrer_host",
         "Mediums": "utm_medium", "Browsers": "browser", "Operating systems": "os", "Countries": "country",
         "Pages": "path"}
PERIODS = {"All time": None, "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7),
           "Last 30 days": timedelta(days=30)}
TOP = 20
TABLE_COLUMNS = {"value": "Value", "visitors": "Visitors", "conversions": "Conversions", "rate": "Conversion rate"}


def render(api: Api) -> None:
    st.header("Traffic")
    st.caption("Visitors by the context of their first exposure: the words the landing page derived from the "
               "request (never the address, the User-Agent or the full referrer).")
    view = st.radio("Show", list(VIEWS), horizontal=True, key="traffic_view")
    left, middle, right = st.columns(3)
    experiment = left.text_input("Experiment", value="", key="traffic_experiment",
                                 help="Empty: every visitor, each counted once")
    metric = middle.selectbox("Conversion", METRICS, index=METRICS.index(DEFAULT_METRIC), key="traffic_metric")
    period = right.selectbox("Period", list(PERIODS), key="traffic_period")
    since = PERIODS[period]
    dimension = VIEWS[view]
    traffic = fetched("Traffic is unavailable", api.traffic, dimension, experiment=experiment.strip(),
                      metric=metric, top=TOP,
                      since=(datetime.now(UTC) - since).isoformat(timespec="seconds") if since else None)
    if traffic is None:
        return
    frame = traffic_frame(traffic)
    st.metric("Visitors", f"{traffic['total_visitors']:,}")
    if frame.empty:
        st.info("No visitors with a recorded context for these filters yet.")
        return
    st.altair_chart(traffic_chart(frame, f"Visitors per {DIMENSION_LABELS[dimension].lower()}"), width="stretch")
    table = frame.assign(rate=frame["rate"].map(percent)).rename(columns=TABLE_COLUMNS)
    st.dataframe(table, hide_index=True, width="stretch")
    if traffic["more_values"]:
        st.caption(f"{traffic['more_values']:,} more values with fewer visitors are not shown.")


render(current_api())
