"""Stats: events per variant × event type and conversion per variant, with filters."""
from __future__ import annotations

import streamlit as st

from core.experiments import DEFAULT_EXPERIMENT
from dashboard.api import Api
from dashboard.charts import conversion_chart, conversion_frame, events_chart, matrix_frame
from dashboard.formatting import DIMENSION_LABELS, variant_order
from dashboard.session import current_api
from dashboard.text import plain
from dashboard.views import event_type_filter, fetched

SEGMENT_VALUES = 200  # the most values /stats/traffic lists
MATRIX_COLUMNS = {"variant": "Variant", "event_type": "Event type", "events": "Events", "visitors": "Unique visitors"}


def segment_filter(api: Api, experiment: str) -> str | None:
    """DIMENSION:VALUE of the segment the analyst picks (a dimension, then one of its values with
    visitors, most visitors first), or None for every visitor."""
    left, right = st.columns(2)
    choice = left.selectbox("Segment", ["All", *DIMENSION_LABELS.values()], key="stats_dimension",
                            help="The visitors whose first exposure had this context, and their events")
    dimension = next((key for key, label in DIMENSION_LABELS.items() if label == choice), None)
    if dimension is None:
        return None
    traffic = fetched("Segments are unavailable", api.traffic, dimension, experiment=experiment, top=SEGMENT_VALUES)
    values = [row["value"] for row in traffic["values"]] if traffic else []
    if traffic and not values:
        right.caption(f"No visitor has a value for {choice} yet: showing every visitor.")
    value = right.selectbox("Value", values, key="stats_segment_value")  # options show as plain text
    return None if value is None else f"{dimension}:{value}"


def render(api: Api) -> None:
    st.header("Stats")
    left, middle, right = st.columns(3)
    experiment = left.text_input("Experiment", value=DEFAULT_EXPERIMENT, key="stats_experiment")
    everything = fetched("Stats are unavailable", api.stats, experiment=experiment)
    if everything is None:
        return
    variants = variant_order(everything.get("by_variant", {}))
    variant = middle.selectbox("Variant", ["All", *variants], key="stats_variant")
    event_type = event_type_filter(api, right, "stats_event_type")
    segment = segment_filter(api, experiment)
    stats = fetched("Stats are unavailable", api.stats, experiment=experiment, variant=variant, event_type=event_type,
                    segment=segment)
    if stats is None:
        return

    total, visitors = st.columns(2)
    total.metric("Events", f"{stats['total_events']:,}")
    visitors.metric("Unique visitors", f"{stats['unique_visitors']:,}")
    if not stats["total_events"]:
        st.info(f"No events recorded for experiment {plain(repr(experiment))} with these filters yet.")
        return
    matrix = matrix_frame(stats)
    st.altair_chart(events_chart(matrix, variants), width="stretch")
    conversion = conversion_frame(stats)
    if not conversion.empty:
        st.altair_chart(conversion_chart(conversion, variants), width="stretch")
    st.subheader("Variant × event type", anchor=False)
    st.dataframe(matrix.rename(columns=MATRIX_COLUMNS), hide_index=True, width="stretch")


render(current_api())
