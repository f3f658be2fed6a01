"""Metrics: what experiments can be judged on (the built-in conversions and the metrics analysts define on
registered event types), and for analysts and up the forms that register an event type and define a metric."""
from __future__ import annotations

import streamlit as st

from core.roles import Role
from dashboard.api import Api
from dashboard.formatting import KIND_WORDS, metric_rows
from dashboard.session import can, current_api
from dashboard.views import fetched, flash, show_flash, written

KINDS = list(KIND_WORDS)


def _event_type_form(api: Api) -> None:
    with st.form("event_type_form", border=True):
        st.subheader("Register an event type", anchor=False)
        st.caption('The landing page reports clicks on any element with data-track="<event type>".')
        key = st.text_input("Event type key", key="event_type_key", placeholder="pricing_click")
        description = st.text_input("Description", key="event_type_description")
        if st.form_submit_button("Register event type"):
            if written("Not registered", api.create_event_type, key.strip(), description.strip()):
                flash(f"Registered event type {key.strip()}.")
                st.rerun()


def _metric_form(api: Api, event_types: list[str]) -> None:
    with st.form("metric_form", border=True):
        st.subheader("Define a metric", anchor=False)
        left, right = st.columns(2)
        key = left.text_input("Metric key", key="metric_key", placeholder="revenue")
        name = right.text_input("Name", key="metric_name", placeholder="Revenue per visitor")
        event_type = left.selectbox("Event type", event_types, key="metric_event_type")
        kind = right.selectbox("Kind", KINDS, key="metric_kind", format_func=lambda k: f"{k}: {KIND_WORDS[k]}")
        direction = left.selectbox("Better when", ["increase", "decrease"], key="metric_direction",
                                   format_func=lambda d: "higher" if d == "increase" else "lower")
        cap = right.number_input("Cap per visitor (value metrics; 0: none)", min_value=0.0, value=0.0,
                                 key="metric_cap")
        if st.form_submit_button("Define metric", type="primary"):
            metric = {"key": key.strip(), "name": name.strip(), "event_type": event_type, "kind": kind,
                      "direction": direction, **({"cap": cap} if cap > 0 else {})}
            if written("Not defined", api.create_metric, metric):
                flash(f"Defined metric {key.strip()}.")
                st.rerun()


def render(api: Api, admin: bool) -> None:
    st.header("Metrics")
    show_flash()
    metrics = fetched("Metrics are unavailable", api.metrics)
    if metrics is None:
        return
    st.dataframe(metric_rows(metrics), hide_index=True, width="stretch")
    if not admin:
        st.info("Sign in (sidebar) with an analyst token or higher to register event types and define metrics.")
        return
    event_types = fetched("Event types are unavailable", api.event_types)
    if event_types is None:
        return
    left, right = st.columns(2)
    with left:
        _metric_form(api, [t["key"] for t in event_types if t["key"] != "page_view"])
    with right:
        _event_type_form(api)


render(current_api(), can(Role.ANALYST))
