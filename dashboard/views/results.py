"""Experiment results: the readout an analyst decides on (all statistics come from metrics_service)."""
from __future__ import annotations

import streamlit as st

from core.events import DEFAULT_METRIC, METRICS
from core.experiments import DEFAULT_EXPERIMENT
from dashboard.api import Api, BackendError
from dashboard.charts import (
    cumulative_chart,
    cumulative_frame,
    forest_chart,
    funnel_chart,
    funnel_frame,
    rate_interval_chart,
    results_frame,
)
from dashboard.text import plain
from dashboard.views import fetched


def _experiment_choice(api: Api) -> tuple[str, dict[str, float] | None]:
    """The experiment key and its configured weights (None when ab_service cannot say)."""
    try:
        experiments = api.experiments()
    except BackendError as exc:
        st.warning(f"Experiment list unavailable ({plain(exc)}); assuming equal weights.")
        return st.text_input("Experiment", value=DEFAULT_EXPERIMENT, key="results_experiment_text"), None
    keys = [e["key"] for e in experiments]
    key = st.selectbox("Experiment", keys, key="results_experiment",
                       index=keys.index(DEFAULT_EXPERIMENT) if DEFAULT_EXPERIMENT in keys else 0)
    chosen = next(e for e in experiments if e["key"] == key)
    return key, {v["name"]: float(v["weight"]) for v in chosen["variants"]}


def render(api: Api) -> None:
    st.header("Experiment results")
    left, right = st.columns(2)
    with left:
        experiment, weights = _experiment_choice(api)
    metric = right.selectbox("Metric", METRICS, index=METRICS.index(DEFAULT_METRIC), key="results_metric")
    results = fetched("Results are unavailable", api.results, experiment, metric, weights)
    if results is None:
        return

    if results["srm"]["mismatch"]:
        st.error(
            f"Sample ratio mismatch (p = {results['srm']['p_value']:.2g}): visitors are not split as configured "
            f"({plain(results['srm']['expected_weights'])}). Find the cause before trusting these results."
        )
    st.info(plain(results["verdict"]))
    frame = results_frame(results)
    if frame.empty or not frame["visitors"].any():
        st.caption("No exposed visitors yet.")
        return
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button("Download results (CSV)", frame.to_csv(index=False).encode(), key="results_csv",
                       file_name=f"{experiment}-{metric}-results.csv", mime="text/csv")
    charts = st.columns(2)
    charts[0].altair_chart(rate_interval_chart(frame), width="stretch")
    if frame["uplift"].notna().any():
        charts[1].altair_chart(forest_chart(frame), width="stretch")

    interval = st.radio("Interval", ["hour", "day"], horizontal=True, key="results_interval")
    series = fetched("Time series unavailable", api.cumulative, experiment, metric, interval)
    steps = None if series is None else fetched("Time series unavailable", api.funnel, experiment)
    if steps is None:
        return
    cumulative, funnel = cumulative_frame(series), funnel_frame(steps)
    if not cumulative.empty:
        st.altair_chart(cumulative_chart(cumulative), width="stretch")
    if not funnel.empty:
        st.altair_chart(funnel_chart(funnel), width="stretch")
