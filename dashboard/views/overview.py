"""Overview: every experiment at a glance (status, days running, exposed visitors, primary result, SRM),
newest activity first. Every number comes from ab_service and metrics_service."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from core.events import DEFAULT_METRIC
from dashboard.api import Api, BackendError
from dashboard.formatting import DASH, days_between, primary_result
from dashboard.session import current_api
from dashboard.text import plain
from dashboard.views import fetched, open_results

COLUMNS = ["Experiment", "Status", "Days running", "Exposed visitors", f"Primary result ({DEFAULT_METRIC})", "SRM",
           "Last activity", "Description"]


def _activity(api: Api, key: str) -> tuple[datetime | None, datetime | None]:
    """First and last day with events in the experiment (None when it has none)."""
    series = api.timeseries(experiment=key, interval="day")["series"]
    days = sorted({point["bucket"] for point in series})
    if not days:
        return None, None
    return datetime.fromisoformat(days[0]), datetime.fromisoformat(days[-1])


def _row(api: Api, experiment: dict[str, Any], now: datetime) -> dict[str, Any]:
    key, status = experiment["key"], experiment["status"]
    weights = {v["name"]: float(v["weight"]) for v in experiment["variants"]}
    try:
        results = api.results(key, DEFAULT_METRIC, weights)
        first, last = _activity(api, key)
    except BackendError:
        results, first, last = None, None, None
    visitors = sum(v["visitors"] for v in results["variants"]) if results else None
    running_until = now if status == "running" else last
    srm = DASH
    if results and results["srm"]["p_value"] is not None:
        srm = "mismatch" if results["srm"]["mismatch"] else "ok"
    return {
        "Experiment": key,
        "Status": status,
        "Days running": _count(days_between(first, running_until) if status != "draft" else None),
        "Exposed visitors": _count(visitors),
        f"Primary result ({DEFAULT_METRIC})": primary_result(results) if results else "metrics unavailable",
        "SRM": srm,
        "Last activity": last,
        "Description": experiment.get("description") or "",
    }


def _count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def render(api: Api) -> None:
    st.header("Overview")
    experiments = fetched("Experiments are unavailable", api.experiments)
    if experiments is None:
        return
    if not experiments:
        st.info("No experiments yet. Sign in and create one on the Experiments page.")
        return
    now = datetime.now(UTC)
    frame = pd.DataFrame([_row(api, e, now) for e in experiments], columns=COLUMNS)
    frame = frame.sort_values("Last activity", ascending=False, na_position="last", kind="stable")
    frame["Last activity"] = frame["Last activity"].map(lambda t: t.strftime("%Y-%m-%d") if pd.notna(t) else DASH)
    running = sum(e["status"] == "running" for e in experiments)
    mismatched = int((frame["SRM"] == "mismatch").sum())
    counts = st.columns(3)
    counts[0].metric("Experiments", len(experiments))
    counts[1].metric("Running", running)
    counts[2].metric("Sample ratio mismatches", mismatched)
    if mismatched:
        names = ", ".join(frame.loc[frame["SRM"] == "mismatch", "Experiment"])
        st.error(f"Visitors are not split as configured in: {plain(names)}. Find the cause before trusting their "
                 "results.", icon=":material/warning:")
    picked = st.dataframe(
        frame, hide_index=True, width="stretch", key="overview_table", on_select="rerun",
        selection_mode="single-row",
        column_config={"Days running": st.column_config.TextColumn(width="small"),
                       "SRM": st.column_config.TextColumn(width="small")},
    )
    st.caption("Select a row to open its results. Days running count from the first recorded visit.")
    rows = picked.selection.rows if picked is not None else []
    if rows:
        open_results(frame.iloc[rows[0]]["Experiment"])


render(current_api())
