"""Experiments: create and edit (variants, weights with a live sum check, coverage), start and stop."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.experiments import MAX_VARIANTS, MIN_VARIANTS, WEIGHT_TOLERANCE
from dashboard.api import Api
from dashboard.text import plain
from dashboard.views import fetched, written


def weights_problem(weights: list[float]) -> str | None:
    """The live check shown under the weight inputs."""
    total = sum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"Weights sum to {total:.3f}; they must sum to 1."
    return None


def _variant_inputs(prefix: str, variants: list[dict[str, Any]], names_fixed: bool) -> list[dict[str, Any]]:
    edited = []
    for i, variant in enumerate(variants):
        name_col, weight_col = st.columns([2, 1])
        name = name_col.text_input(f"Variant {i + 1} name", value=variant["name"], key=f"{prefix}_name_{i}",
                                   disabled=names_fixed)
        weight = weight_col.number_input(f"Weight {i + 1}", min_value=0.0, max_value=1.0, step=0.05,
                                         value=float(variant["weight"]), key=f"{prefix}_weight_{i}", format="%.3f")
        edited.append({"name": name.strip(), "weight": round(weight, 6)})
    problem = weights_problem([v["weight"] for v in edited])
    if problem:
        st.error(problem)
    else:
        st.caption("✓ Weights sum to 1.")
    return edited


def _create(api: Api) -> None:
    with st.expander("New experiment"):
        key = st.text_input("Key", key="new_key", placeholder="hero_test")
        description = st.text_input("Description", key="new_description")
        count = int(st.number_input("Number of variants", min_value=MIN_VARIANTS, max_value=MAX_VARIANTS,
                                    value=MIN_VARIANTS, key="new_count"))
        defaults = [{"name": chr(ord("A") + i), "weight": round(1 / count, 6)} for i in range(count)]
        defaults[-1]["weight"] = round(1 - sum(d["weight"] for d in defaults[:-1]), 6)
        variants = _variant_inputs("new", defaults, names_fixed=False)
        coverage = st.slider("Coverage (% of traffic)", 0, 100, 100, key="new_coverage") / 100
        invalid = bool(weights_problem([v["weight"] for v in variants]))
        if st.button("Create as draft", key="new_create", disabled=invalid):
            if written("Not created", api.create_experiment, {
                    "key": key.strip(), "description": description, "variants": variants, "coverage": coverage,
                    "status": "draft"}):
                st.success(f"Created experiment {plain(repr(key.strip()))} (draft).")


def _status_controls(api: Api, experiment: dict[str, Any]) -> None:
    key, status = experiment["key"], experiment["status"]
    target = {"draft": "running", "stopped": "running", "running": "stopped"}[status]
    label = "Start" if target == "running" else "Stop"
    pending = st.session_state.get("pending_status")
    if pending == (key, target):
        st.warning(f"{label} experiment {plain(repr(key))}? " + (
            "Visitors will be bucketed into its variants." if target == "running"
            else "Everyone will see the control; assignments are kept."))
        yes, no = st.columns(2)
        if yes.button(f"Yes, {label.lower()} it", key="confirm_status", type="primary"):
            st.session_state.pop("pending_status", None)
            if written("Not changed", api.update_experiment, key, {"status": target}):
                st.success(f"Experiment {plain(repr(key))} is now {target}.")
        if no.button("Cancel", key="cancel_status"):
            st.session_state.pop("pending_status", None)
            st.rerun()
    elif st.button(f"{label} experiment", key="ask_status"):
        st.session_state["pending_status"] = (key, target)
        st.rerun()


def _edit(api: Api, experiment: dict[str, Any]) -> None:
    st.subheader(plain(f"{experiment['key']} · {experiment['status']}"))
    prefix = f"edit_{experiment['key']}"
    variants = _variant_inputs(prefix, experiment["variants"], names_fixed=experiment["status"] != "draft")
    coverage = st.slider("Coverage (% of traffic)", 0, 100, int(round(experiment["coverage"] * 100)),
                         key=f"{prefix}_coverage") / 100
    invalid = bool(weights_problem([v["weight"] for v in variants]))
    if st.button("Save changes", key=f"{prefix}_save", disabled=invalid):
        if written("Not saved", api.update_experiment, experiment["key"], {"variants": variants, "coverage": coverage}):
            st.success("Saved.")
    _status_controls(api, experiment)


def render(api: Api, admin: bool) -> None:
    st.header("Experiments")
    experiments = fetched("Experiments are unavailable", api.experiments)
    if experiments is None:
        return
    table = pd.DataFrame(
        [{"key": e["key"], "status": e["status"], "coverage": e["coverage"],
          "variants": ", ".join(f"{v['name']} {v['weight']:.0%}" for v in e["variants"]),
          "description": e["description"]} for e in experiments],
        columns=["key", "status", "coverage", "variants", "description"],
    )
    st.dataframe(table, hide_index=True, width="stretch")
    if not admin:
        st.info("Sign in with the admin token (sidebar) to create, edit, start or stop experiments.")
        return
    _create(api)
    if experiments:
        chosen = st.selectbox("Edit experiment", [e["key"] for e in experiments], key="edit_choice")
        _edit(api, next(e for e in experiments if e["key"] == chosen))
