"""Feature toggles and flags: the right widget per type, a rollout slider, and the audit log."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.flags import MAX_STRING
from dashboard.api import Api
from dashboard.text import plain
from dashboard.views import fetched, written


def _widget(flag: dict[str, Any]) -> Any:
    key, kind, value = flag["key"], flag["type"], flag["value"]
    label = plain(key.replace("_", " ").capitalize())
    help_text = plain(flag["description"]) if flag.get("description") else None
    if kind == "boolean":
        return st.toggle(label, value=bool(value), key=f"toggle_{key}", help=help_text)
    if kind == "number":
        return st.number_input(label, value=float(value), key=f"number_{key}", help=help_text)
    if kind == "color":
        return st.color_picker(label, value=value, key=f"color_{key}", help=help_text)
    return st.text_input(label, value=str(value), key=f"text_{key}", max_chars=MAX_STRING, help=help_text)


def _same(kind: str, old: Any, new: Any) -> bool:
    return float(old) == float(new) if kind == "number" else old == new


def _typed(kind: str, value: Any) -> Any:
    if kind == "number" and float(value).is_integer():
        return int(value)
    return value


def render(api: Api, admin: bool) -> None:
    st.header("Feature toggles")
    flags = fetched("Toggles are unavailable", api.flags)
    if flags is None:
        return
    if not admin:
        st.info("Sign in with the admin token (sidebar) to change toggles.")
        table = pd.DataFrame(flags, columns=["key", "type", "value", "rollout", "description"])
        table["value"] = table["value"].map(str)
        st.dataframe(table, hide_index=True, width="stretch")
        return

    with st.form("flags_form"):
        edits = {}
        for flag in flags:
            value_col, rollout_col = st.columns([3, 2])
            with value_col:
                value = _widget(flag)
            with rollout_col:
                rollout = st.slider("Rollout (% of visitors)", 0, 100, int(round(flag["rollout"] * 100)),
                                    key=f"rollout_{flag['key']}")
            edits[flag["key"]] = (flag, value, rollout / 100)
        submitted = st.form_submit_button("Save toggles", type="primary")

    if submitted:
        values = {k: _typed(f["type"], v) for k, (f, v, _) in edits.items() if not _same(f["type"], f["value"], v)}
        rollouts = {k: r for k, (f, _, r) in edits.items() if abs(f["rollout"] - r) > 1e-9}

        def save() -> None:
            if values:
                api.save_config(values)
            for key, rollout in rollouts.items():
                api.update_flag(key, {"rollout": rollout})

        if written("Not saved", save):
            changed = sorted(set(values) | set(rollouts))
            if changed:
                st.success(f"Saved: {plain(', '.join(changed))}")
            else:
                st.info("Nothing changed.")

    st.subheader("Audit log")
    entries = fetched("Audit log unavailable", api.audit)
    if entries is None:
        return
    frame = pd.DataFrame(entries, columns=["at", "actor", "entity", "key", "action", "old", "new"])
    frame["at"] = pd.to_datetime(frame["at"], unit="ms", utc=True)
    for column in ("old", "new"):
        frame[column] = frame[column].map(lambda v: "" if v is None else str(v))
    st.dataframe(frame, hide_index=True, width="stretch")
