"""Experiment results: the readout an analyst decides on (all statistics come from metrics_service).

The page's URL names the experiment (/results?experiment=<key>), so a readout can be shared."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.events import DEFAULT_METRIC, METRICS
from core.experiments import DEFAULT_EXPERIMENT
from core.roles import Role
from dashboard.api import Api, BackendError
from dashboard.charts import (
    cumulative_chart,
    cumulative_frame,
    forest_chart,
    funnel_chart,
    funnel_frame,
    rate_interval_chart,
    results_frame,
    segment_uplift_chart,
    segments_frame,
    single_bucket,
)
from dashboard.formatting import (
    DIMENSION_LABELS,
    MEAN_KINDS,
    RECOMMENDATION_TITLES,
    VERDICT_TITLES,
    experiment_metrics,
    interval_text,
    metric_label,
    percent,
    plan_lines,
    results_table,
    signed_percent,
    variant_order,
)
from dashboard.session import can, current_api
from dashboard.text import plain
from dashboard.views import fetched, flash, show_flash, written

SIGNIFICANCE_STYLE = {"better": "background-color: #d3f9d8; color: #1b5e20",
                      "worse": "background-color: #ffe3e3; color: #8b1a1a"}


def _experiment_choice(api: Api) -> tuple[str, dict[str, Any] | None]:
    """The experiment key and its definition (None when ab_service cannot say)."""
    asked = st.query_params.get("experiment")
    try:
        experiments = api.experiments()
    except BackendError as exc:
        st.warning(f"Experiment list unavailable ({plain(exc)}); assuming equal weights.")
        return st.text_input("Experiment", value=asked or DEFAULT_EXPERIMENT, key="results_experiment_text"), None
    keys = [e["key"] for e in experiments]
    if not keys:
        st.info("No experiments yet.")
        return DEFAULT_EXPERIMENT, None
    if st.session_state.get("results_experiment") not in keys:
        st.session_state["results_experiment"] = asked if asked in keys else (
            DEFAULT_EXPERIMENT if DEFAULT_EXPERIMENT in keys else keys[0])
    key = st.selectbox("Experiment", keys, key="results_experiment")
    st.query_params["experiment"] = key
    return key, next(e for e in experiments if e["key"] == key)


def _verdict_card(results: dict[str, Any]) -> None:
    """The verdict, titled and coloured by what it says (metrics_service's code), with its sentence."""
    code, sentence = results.get("verdict_code"), plain(results["verdict"])
    best = next((v for v in results["variants"] if v["variant"] == results.get("verdict_variant")), None)
    with st.container(border=True, key="verdict_card"):
        title = VERDICT_TITLES.get(code, VERDICT_TITLES[None])
        wins = best is not None and (best["better"] if best.get("better") is not None
                                     else (best.get("uplift") or 0) > 0)
        if code == "significant" and best is not None:
            title = f"{'Winner' if wins else 'Loser'}: {best['variant']}"
        st.subheader(plain(title), anchor=False)
        if code == "significant" and wins:
            st.success(sentence, icon=":material/emoji_events:")
        elif code in ("significant", "sample_ratio_mismatch"):
            st.error(sentence, icon=":material/warning:")
        else:
            st.info(sentence, icon=":material/hourglass_top:")
        if best is not None and best.get("uplift") is not None:
            level = f"{(1 - results.get('alpha', 0.05)) * 100:g}%"
            cols = st.columns(3)
            cols[0].metric(f"Uplift of {plain(best['variant'])}", signed_percent(best["uplift"]))
            cols[1].metric("Chance to beat control", percent(best.get("chance_to_beat_control")))
            cols[2].metric("Visitors", f"{sum(v['visitors'] for v in results['variants']):,}")
            st.caption(f"{level} interval of the uplift: "
                       f"{interval_text(best['uplift_ci_low'], best['uplift_ci_high'], signed=True)}")


def _styled(table: pd.DataFrame):
    return table.style.map(lambda value: SIGNIFICANCE_STYLE.get(value, ""), subset=["Significance"])


SEGMENT_TABLE = {"segment": "Segment", "variant": "Variant", "visitors": "Visitors", "conversions": "Conversions",
                 "rate": "Conversion rate", "uplift": "Uplift vs control", "p_value_adjusted": "Adjusted p-value",
                 "judged": "Judged"}


def _breakdown(api: Api, experiment: str, metric: str, weights: dict[str, float] | None, names: list[str]) -> None:
    """The readout per segment of a context dimension the analyst picks (computed by metrics_service)."""
    choice = st.selectbox("Break down by segment", ["Nothing", *DIMENSION_LABELS.values()], key="results_dimension",
                          help="Each visitor counts in the segment of their first exposure's context")
    dimension = next((key for key, label in DIMENSION_LABELS.items() if label == choice), None)
    if dimension is None:
        return
    results = fetched("Segment results are unavailable", api.results, experiment, metric, weights, dimension=dimension)
    if results is None:
        return
    st.info(plain(results["caution"]), icon=":material/info:")
    frame = segments_frame(results)
    if frame.empty:
        st.caption("No exposed visitors with a recorded context yet.")
        return
    table = frame.assign(rate=frame["rate"].map(percent), uplift=frame["uplift"].map(signed_percent),
                         p_value_adjusted=frame["p_value_adjusted"].map(
                             lambda p: "not judged" if p is None or pd.isna(p) else f"{p:.3g}"),
                         judged=frame["judged"].map({True: "yes", False: "too small"}))
    st.dataframe(table[list(SEGMENT_TABLE)].rename(columns=SEGMENT_TABLE), hide_index=True, width="stretch",
                 column_config={"Adjusted p-value": st.column_config.TextColumn(
                     help="z-test p-value adjusted across the judged segments (Benjamini-Hochberg)")})
    if frame["uplift"].notna().any():
        st.altair_chart(segment_uplift_chart(frame, names), width="stretch")


def _summary_card(api: Api, experiment: str, definition: dict[str, Any], labels: dict[str, str],
                  weights: dict[str, float] | None) -> None:
    """The experiment's recommendation from all its metrics: the primary's verdict, each guardrail."""
    primary = definition.get("primary_metric") or DEFAULT_METRIC
    guardrails = list(definition.get("guardrail_metrics") or [])
    summary = fetched("Summary unavailable", api.summary, experiment, primary,
                      list(definition.get("secondary_metrics") or []), guardrails, weights)
    if summary is None:
        return
    recommendation = summary["recommendation"]
    code = recommendation["code"]
    with st.container(border=True, key="summary_card"):
        title = RECOMMENDATION_TITLES.get(code, code)
        if code == "ship":
            title = f"Ship {recommendation['variant']}"
        st.subheader(plain(title), anchor=False)
        sentence = plain(recommendation["sentence"])
        if code == "ship":
            st.success(sentence, icon=":material/rocket_launch:")
        elif code in ("guardrail", "sample_ratio_mismatch"):
            st.error(sentence, icon=":material/block:")
        else:
            st.info(sentence, icon=":material/hourglass_top:")
        lines = [f"Primary: {labels.get(primary, primary)}: {summary['primary']['verdict']}"]
        for guardrail in summary["guardrails"]:
            blocking = " (blocking)" if guardrail["metric"] == recommendation.get("blocking_guardrail") else ""
            label = labels.get(guardrail["metric"], guardrail["metric"])
            lines.append(f"Guardrail{blocking}: {label}: {guardrail['verdict']}")
        if not guardrails:
            lines.append("No guardrails: name some in the experiment's definition (guardrail_metrics).")
        for line in lines:
            st.write(plain(line))


def _planner(api: Api, experiment: str, options: list[str], labels: dict[str, str],
             weights: dict[str, float] | None) -> None:
    """How many visitors a test needs, and how long that takes at the observed traffic (metrics_service
    computes it)."""
    st.subheader("Plan a test", anchor=False)
    cols = st.columns(4)
    metric = cols[0].selectbox("Metric to plan for", options, key="plan_metric",  # the primary first
                               format_func=lambda k: labels.get(k, k))  # options show as plain text
    mde = cols[1].number_input("Minimum detectable effect (%)", min_value=0.1, max_value=500.0, value=10.0,
                               step=1.0, key="plan_mde")
    power = cols[2].number_input("Power (%)", min_value=50.0, max_value=99.0, value=80.0, step=5.0, key="plan_power")
    alpha = cols[3].number_input("Significance level", min_value=0.001, max_value=0.2, value=0.05, step=0.01,
                                 format="%.3f", key="plan_alpha")
    plan = fetched("No plan", api.plan, experiment, metric, mde / 100, power / 100, alpha, weights)
    if plan is None:
        return
    with st.container(border=True, key="plan_card"):
        for line in plan_lines(plan):
            st.write(plain(line))
        if plan.get("saved"):
            st.caption(f"A plan of {plan['saved_per_variant']:,} visitors per variant is saved for this metric: its "
                       "readouts use the group-sequential test.")
        if can(Role.ANALYST) and plan.get("per_variant") is not None and st.button("Save this plan", key="save_plan"):
            if written("Not saved", api.save_plan, experiment, metric, mde / 100, power / 100, alpha):
                flash(f"Saved the plan for {metric}: its readouts now use the group-sequential test.")
                st.rerun()


def _readout(api: Api, experiment: str, metric: str, weights: dict[str, float] | None) -> None:
    results = fetched("Results are unavailable", api.results, experiment, metric, weights)
    if results is None:
        return
    names = variant_order((v["variant"] for v in results["variants"]), list(weights or ()))

    if results["srm"]["mismatch"]:
        expected = ", ".join(f"{k} {percent(w, 0)}" for k, w in results["srm"]["expected_weights"].items())
        st.error(
            f"Sample ratio mismatch (p = {results['srm']['p_value']:.2g}): visitors are not split as configured "
            f"({plain(expected)}). Find the cause before trusting these results."
        )
    _verdict_card(results)
    frame = results_frame(results)
    if frame.empty or not frame["visitors"].any():
        st.caption("No exposed visitors yet.")
        return
    level = f"{(1 - results.get('alpha', 0.05)) * 100:g}%"
    mean = results.get("kind") in MEAN_KINDS
    st.dataframe(_styled(results_table(results)), hide_index=True, width="stretch", column_config={
        "Visitors": st.column_config.NumberColumn(width="small", format="localized"),
        "Conversions": st.column_config.NumberColumn(format="localized"),
        "p-value": st.column_config.TextColumn(
            width="small", help="group-sequential (a saved plan's alpha spending)"
            if results.get("method") == "group_sequential"
            else "always valid (a mixture sequential test): safe to read as often as you like"),
        "Conversion rate": st.column_config.TextColumn(help=f"with its {level} interval"),
        "Mean per visitor": st.column_config.TextColumn(help=f"with its {level} interval"),
        "Uplift vs control": st.column_config.TextColumn(help=f"relative to the control, with its {level} interval"),
    })
    st.download_button("Download results (CSV)", frame.to_csv(index=False).encode(), key="results_csv",
                       file_name=f"{experiment}-{metric}-results.csv", mime="text/csv")
    charts = st.columns(2)
    if not mean:
        charts[0].altair_chart(rate_interval_chart(frame, names), width="stretch")
    if frame["uplift"].notna().any():
        charts[1].altair_chart(forest_chart(frame, names), width="stretch")
    if metric not in METRICS:
        return  # the segment breakdown, the cumulative series and the funnel are of the built-in conversions
    _breakdown(api, experiment, metric, weights, names)

    interval = st.radio("Interval", ["hour", "day"], horizontal=True, key="results_interval", index=1)
    series = fetched("Time series unavailable", api.cumulative, experiment, metric, interval)
    steps = None if series is None else fetched("Time series unavailable", api.funnel, experiment)
    if steps is None:
        return
    cumulative = cumulative_frame(series)
    if interval == "day" and not cumulative.empty and single_bucket(cumulative):
        finer = fetched("Time series unavailable", api.cumulative, experiment, metric, "hour")
        if finer is not None:
            cumulative = cumulative_frame(finer)
            st.caption("One day of data so far: shown by hour.")
    funnel = funnel_frame(steps)
    if not cumulative.empty:
        st.altair_chart(cumulative_chart(cumulative, names), width="stretch")
    if not funnel.empty:
        st.altair_chart(funnel_chart(funnel, names), width="stretch")


def render(api: Api) -> None:
    st.header("Experiment results")
    show_flash()
    left, right = st.columns(2)
    with left:
        experiment, definition = _experiment_choice(api)
    catalogue = fetched("Metric definitions unavailable", api.metrics) or []
    labels = {m["key"]: metric_label(m) for m in catalogue}
    primary = (definition or {}).get("primary_metric") or DEFAULT_METRIC
    options = experiment_metrics(definition, [primary, *([m["key"] for m in catalogue] or METRICS)])
    metric = right.selectbox("Metric", options, index=options.index(primary) if primary in options else 0,
                             key="results_metric", format_func=lambda k: labels.get(k, k))
    weights = {v["name"]: float(v["weight"]) for v in definition["variants"]} if definition else None
    if definition is not None:
        _summary_card(api, experiment, definition, labels, weights)
    _readout(api, experiment, metric, weights)
    _planner(api, experiment, options, labels, weights)


render(current_api())
