"""Experiments: create and edit (variants, weights, coverage, what each variant shows, who is eligible),
preview each variant, start and stop with a confirmation that names what will change.

After every write the page reruns, so the list, the headings and the prompts show what the write left.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.experiments import MAX_VARIANTS, MIN_VARIANTS
from core.roles import Role
from dashboard import editing
from dashboard.api import Api, BackendError
from dashboard.formatting import field_text, flag_label, percent
from dashboard.session import can, current_api, settings
from dashboard.text import plain
from dashboard.views import fetched, flash, show_flash
from dashboard.widgets import flag_widget

ERRORS_KEY = "experiment_errors"  # {form prefix: {field: message}} from the last refused write


def _field_error(prefix: str, *fields: str) -> None:
    """ab_service's message for these fields (or fields under them), next to them."""
    for field, message in st.session_state.get(ERRORS_KEY, {}).get(prefix, {}).items():
        if any(field == f or field.startswith(f + ".") for f in fields):
            st.error(plain(f"{field}: {message}"))


def _write(prefix: str, failed: str, call, *args: Any) -> str | None:
    """Run a write: None when it went through, else "<failed>: <why>", with ab_service's field errors kept
    for the fields of the form named prefix."""
    try:
        call(*args)
    except BackendError as exc:
        st.session_state.setdefault(ERRORS_KEY, {})[prefix] = {e["field"]: e["message"] for e in exc.errors}
        return f"{failed}: {exc}"
    st.session_state.get(ERRORS_KEY, {}).pop(prefix, None)
    return None


def _settle(refusal: str | None, success: str) -> None:
    """After a confirmed write: say how it went on the page the rerun draws."""
    if refusal is None:
        flash(success)
    else:
        flash(refusal, "error")
    st.rerun()


def _equal_weights(prefix: str) -> None:
    """on_change of a variant count: every variant gets an equal share again."""
    count = int(st.session_state[f"{prefix}_count"])
    for i, share in enumerate(editing.equal_shares(count)):
        st.session_state[f"{prefix}_weight_{i}"] = share


def _variant_inputs(prefix: str, variants: list[dict[str, Any]], names_fixed: bool) -> list[dict[str, Any]]:
    """Name and weight of each variant, with the checks of both under them."""
    edited = []
    for i, variant in enumerate(variants):
        st.session_state.setdefault(f"{prefix}_name_{i}", variant["name"])
        st.session_state.setdefault(f"{prefix}_weight_{i}", float(variant["weight"]))
        name_col, weight_col = st.columns([2, 1])
        name = name_col.text_input(f"Variant {i + 1} name" + (" (control)" if i == 0 else ""),
                                   key=f"{prefix}_name_{i}", disabled=names_fixed)
        weight = weight_col.number_input(f"Weight {i + 1}", min_value=0.0, max_value=1.0, step=0.05,
                                         key=f"{prefix}_weight_{i}", format="%.3f")
        edited.append({"name": name.strip(), "weight": round(weight, 6)})
    problem = editing.variants_problem(edited)
    if problem:
        st.error(problem)
    else:
        st.caption("✓ Weights sum to 1: " + plain(editing.variants_text(edited)))
    _field_error(prefix, "variants")
    return edited


def _content_inputs(prefix: str, variants: list[dict[str, Any]], flags: list[dict[str, Any]],
                    current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each variant shows: the flags the experiment changes, and each variant's value of each, with
    the widget that fits the flag's type. Returns the variants with their overrides."""
    by_key = {f["key"]: f for f in flags}
    overridden = sorted({k for v in current for k in (v.get("overrides") or {}) if k in by_key})
    chosen = st.multiselect("Flags this experiment changes", list(by_key), default=overridden,
                            key=f"{prefix}_flags", format_func=lambda k: f"{flag_label(by_key[k])} ({k})",
                            help="Each variant shows its own value of these flags; the others stay as they are.")
    if not chosen:
        st.caption("Every variant shows the page as the flags make it. Choose flags to change what a variant shows.")
        return [{**v, "overrides": {}} for v in variants]
    tabs = st.tabs([plain(f"Variant {v['name'] or i + 1}") for i, v in enumerate(variants)])
    result = []
    for i, (variant, tab) in enumerate(zip(variants, tabs, strict=True)):
        saved = current[i].get("overrides") or {} if i < len(current) else {}
        values = {}
        with tab:
            for key in chosen:
                flag = by_key[key]
                own = field_text("value", flag["value"])
                values[key] = flag_widget(flag, f"{prefix}_ov_{i}_{key}", plain(flag_label(flag)),
                                          value=saved.get(key, flag["value"]),
                                          help_text=plain(f"Flag {key}; its own value is {own}"))
        result.append({**variant, "overrides": editing.overrides_of(values, by_key)})
    _field_error(prefix, "overrides")
    return result


def _targeting_inputs(prefix: str, experiment: dict[str, Any] | None, editable: bool) -> dict[str, Any] | None:
    """Namespace and condition (editable while draft); None while one of them has a problem."""
    namespace = (experiment or {}).get("namespace")
    condition = (experiment or {}).get("condition")
    st.session_state.setdefault(f"{prefix}_ns_on", bool(namespace))
    exclusive = st.checkbox("Mutually exclusive with other experiments (namespace)", key=f"{prefix}_ns_on",
                            disabled=not editable,
                            help="Experiments in one namespace with ranges that do not overlap never share a visitor.")
    problem = False
    chosen_namespace = None
    if exclusive:
        left, right = st.columns([1, 2])
        st.session_state.setdefault(f"{prefix}_ns_name", (namespace or {}).get("name", ""))
        st.session_state.setdefault(f"{prefix}_ns_range", (int(round((namespace or {}).get("start", 0) * 100)),
                                                          int(round((namespace or {}).get("end", 0.5) * 100))))
        name = left.text_input("Namespace", key=f"{prefix}_ns_name", disabled=not editable, placeholder="hero")
        low, high = right.slider("Share of the namespace (%)", 0, 100, key=f"{prefix}_ns_range",
                                 disabled=not editable)
        chosen_namespace = {"name": name.strip(), "start": low / 100, "end": high / 100}
        message = editing.namespace_problem(name.strip(), low / 100, high / 100)
        if message:
            st.error(message)
            problem = True
    _field_error(prefix, "namespace")
    st.session_state.setdefault(f"{prefix}_condition", editing.condition_text(condition))
    text = st.text_area("Condition (GrowthBook syntax, JSON)", key=f"{prefix}_condition", disabled=not editable,
                        placeholder=editing.EXAMPLE_CONDITION, height=110,
                        help="Only visitors whose attributes match take part: id, device, browser, utm_source, "
                             "utm_medium, utm_campaign, referrer_host, path, returning. Empty: everyone.")
    parsed, message = editing.parse_condition(text)
    if message:
        st.error(message)
        problem = True
    _field_error(prefix, "condition")
    if not editable:
        st.caption("Namespace and condition are fixed once an experiment has started.")
    return None if problem else {"namespace": chosen_namespace, "condition": parsed}


def _schedule_inputs(prefix: str, experiment: dict[str, Any] | None) -> dict[str, str | None]:
    """When the scheduler starts and stops it (UTC), each with its checkbox: {"start_at", "stop_at"} as
    ab_service takes them, None for a time not set (in an edit: cancelled)."""
    status = (experiment or {}).get("status", "draft")
    soon = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    chosen: dict[str, str | None] = {}
    for field, label, default in (("start_at", "Start", soon), ("stop_at", "Stop", soon + timedelta(days=14))):
        current = (experiment or {}).get(field)
        st.session_state.setdefault(f"{prefix}_{field}_on", bool(current))
        possible = current or (status != "running" if field == "start_at" else status != "stopped")
        on = st.checkbox(f"{label} automatically at a set time (UTC)", key=f"{prefix}_{field}_on",
                         disabled=not possible)
        chosen[field] = None
        if on:
            day, clock = editing.schedule_parts(current, default)
            st.session_state.setdefault(f"{prefix}_{field}_day", day)
            st.session_state.setdefault(f"{prefix}_{field}_time", clock)
            left, right = st.columns(2)
            day = left.date_input(f"{label} date (UTC)", key=f"{prefix}_{field}_day")
            clock = right.time_input(f"{label} time (UTC)", key=f"{prefix}_{field}_time", step=300)
            chosen[field] = editing.schedule_iso(day, clock)
        _field_error(prefix, field)
    return chosen


def _create(api: Api, flags: list[dict[str, Any]] | None, content: bool) -> None:
    expanded = bool(st.session_state.get(ERRORS_KEY, {}).get("new"))
    with st.container(key="new_experiment"), st.expander("New experiment", expanded=expanded):
        key = st.text_input("Key", key="new_key", placeholder="hero_test").strip()
        if key and editing.key_problem(key):
            st.error(editing.key_problem(key))
        _field_error("new", "key")
        description = st.text_input("Description", key="new_description")
        st.session_state.setdefault("new_count", MIN_VARIANTS)
        count = int(st.number_input("Number of variants", min_value=MIN_VARIANTS, max_value=MAX_VARIANTS,
                                    key="new_count", on_change=_equal_weights, args=("new",)))
        defaults = [{"name": chr(ord("A") + i), "weight": w} for i, w in enumerate(editing.equal_shares(count))]
        variants = _variant_inputs("new", defaults, names_fixed=False)
        coverage = st.slider("Coverage (% of eligible visitors)", 0, 100, 100, key="new_coverage") / 100
        st.subheader("Schedule", anchor=False)
        times = _schedule_inputs("new", None)
        body: dict[str, Any] = {"key": key, "description": description, "coverage": coverage, "status": "draft",
                                **{field: when for field, when in times.items() if when is not None}}
        targeting: dict[str, Any] | None = {}
        if content and flags is not None:
            st.subheader("What each variant shows", anchor=False)
            variants = _content_inputs("new", variants, flags, [])
            st.subheader("Who takes part", anchor=False)
            targeting = _targeting_inputs("new", None, editable=True)
            body.update({k: v for k, v in (targeting or {}).items() if v is not None})
        body["variants"] = variants
        invalid = bool(editing.variants_problem(variants) or editing.key_problem(key) or targeting is None)
        if st.button("Create as draft", key="new_create", disabled=invalid, type="primary"):
            refusal = _write("new", "Not created", api.create_experiment, body)
            if refusal is None:
                st.session_state["edit_choice"] = key
                for name in [k for k in st.session_state if str(k).startswith("new_")]:
                    del st.session_state[name]
            _settle(refusal, f"Created experiment {key!r} (draft).")  # refused: the rerun shows why, by the field


def _confirm(prompt_key: str, question: str, yes: str) -> bool | None:
    """A pending confirmation: True on yes, False on cancel, None while unanswered."""
    st.warning(plain(question))
    left, right = st.columns(2)
    if left.button(yes, key=f"confirm_{prompt_key}", type="primary"):
        return True
    if right.button("Cancel", key=f"cancel_{prompt_key}"):
        return False
    return None


def _status_controls(api: Api, experiment: dict[str, Any]) -> None:
    key, status = experiment["key"], experiment["status"]
    target = {"draft": "running", "stopped": "running", "running": "stopped"}[status]
    label = "Start" if target == "running" else "Stop"
    if st.session_state.get("pending_status") == (key, target):
        consequence = (editing.start_consequence(experiment) if target == "running" else
                       f"Everyone will see the control ({experiment['variants'][0]['name']}); assignments are kept.")
        answer = _confirm("status", f"{label} experiment {key!r}? It goes from {status} to {target}. {consequence}",
                          f"Yes, {label.lower()} it")
        if answer is not None:
            st.session_state.pop("pending_status", None)
            if not answer:
                st.rerun()
            _settle(_write(f"edit_{key}", "Not changed", api.update_experiment, key, {"status": target}),
                    f"Experiment {key!r} is now {target}.")
    elif st.button(f"{label} experiment", key="ask_status"):
        st.session_state["pending_status"] = (key, target)
        st.rerun()


def _previews(experiment: dict[str, Any]) -> None:
    landing = settings().landing_url
    st.caption("Preview each variant on the landing page (forced previews are left out of the stats):")
    columns = st.columns(min(len(experiment["variants"]), 5))
    for i, variant in enumerate(experiment["variants"]):
        columns[i % len(columns)].link_button(plain(f"Preview {variant['name']}"),
                                              editing.preview_url(landing, experiment["key"], variant["name"]),
                                              icon=":material/open_in_new:")


def _edit(api: Api, experiment: dict[str, Any], flags: list[dict[str, Any]] | None, content: bool) -> None:
    key, status = experiment["key"], experiment["status"]
    prefix = f"edit_{key}"
    st.subheader(plain(f"{key} · {status}"), anchor=False)
    if experiment.get("description"):
        st.caption(plain(experiment["description"]))
    draft = status == "draft"
    variants_now = experiment["variants"]
    if draft:
        st.session_state.setdefault(f"{prefix}_count", len(variants_now))
        count = int(st.number_input("Number of variants", min_value=MIN_VARIANTS, max_value=MAX_VARIANTS,
                                    key=f"{prefix}_count", on_change=_equal_weights, args=(prefix,)))
        variants_now = [variants_now[i] if i < len(variants_now) else {"name": chr(ord("A") + i), "weight": 0.0}
                        for i in range(count)]
    variants = _variant_inputs(prefix, variants_now, names_fixed=not draft)
    coverage = st.slider("Coverage (% of eligible visitors)", 0, 100, int(round(experiment["coverage"] * 100)),
                         key=f"{prefix}_coverage") / 100
    changes: dict[str, Any] = {}
    targeting: dict[str, Any] | None = {}
    if content and flags is not None:
        st.subheader("What each variant shows", anchor=False)
        variants = _content_inputs(prefix, variants, flags, experiment["variants"])
        st.subheader("Who takes part", anchor=False)
        targeting = _targeting_inputs(prefix, experiment, editable=draft)
        if draft and targeting is not None:
            changes.update(targeting)
        _previews(experiment)
    changes.update({"variants": variants, "coverage": coverage})
    times = _schedule_inputs(prefix, experiment)
    changes.update({field: when for field, when in times.items() if when != _minute(experiment.get(field))})
    invalid = bool(editing.variants_problem(variants) or targeting is None)
    if not content:
        changes["variants"] = [{"name": v["name"], "weight": v["weight"]} for v in variants]
    described = editing.describe_changes(experiment, changes)

    if st.session_state.get("pending_save") == key:
        answer = _confirm("save", f"Save changes to {key!r}? " + "; ".join(described) + ".", "Yes, save")
        if answer is not None:
            st.session_state.pop("pending_save", None)
            if not answer:
                st.rerun()
            _settle(_write(prefix, "Not saved", api.update_experiment, key, changes),
                    f"Saved {key!r}: " + "; ".join(described) + ".")
    elif st.button("Save changes", key=f"{prefix}_save", disabled=invalid or not described):
        st.session_state["pending_save"] = key
        st.rerun()
    if not described:
        st.caption("No unsaved changes.")
    _status_controls(api, experiment)


def _minute(iso: str | None) -> str | None:
    """A stored time as the inputs would send it back (to the minute), so an unchanged one is no change."""
    return editing.schedule_iso(*editing.schedule_parts(iso, datetime.now(UTC))) if iso else None


def _table(experiments: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Experiment": e["key"], "Status": e["status"], "Coverage": percent(e["coverage"], 0),
          "Variants": editing.variants_text(e["variants"]),
          "Changes": ", ".join(sorted({k for v in e["variants"] for k in (v.get("overrides") or {})})),
          "Scheduled": editing.schedule_text(e), "Description": e["description"]} for e in experiments],
        columns=["Experiment", "Status", "Coverage", "Variants", "Changes", "Scheduled", "Description"],
    )


def render(api: Api, editor: bool) -> None:
    st.header("Experiments")
    show_flash()
    experiments = fetched("Experiments are unavailable", api.experiments)
    if experiments is None:
        return
    st.dataframe(_table(experiments), hide_index=True, width="stretch")
    if not editor:
        st.info("Sign in (sidebar) with an editor or admin token to create, edit, start or stop experiments.")
        return
    content = editing.supports_content(experiments)
    flags = fetched("Flags are unavailable", api.flags) if content else None
    _create(api, flags, content)
    if experiments:
        keys = [e["key"] for e in experiments]
        asked = st.query_params.get("experiment")
        if st.session_state.get("edit_choice") not in keys:
            st.session_state["edit_choice"] = asked if asked in keys else keys[0]
        chosen = st.selectbox("Edit experiment", keys, key="edit_choice")
        st.query_params["experiment"] = chosen  # the address names the experiment being edited
        with st.container(border=True, key="edit_experiment"):
            _edit(api, next(e for e in experiments if e["key"] == chosen), flags, content)


render(current_api(), can(Role.EDITOR))
