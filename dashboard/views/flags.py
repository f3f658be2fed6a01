"""Feature toggles: each flag labelled by what it does, the widget that fits its type, a rollout slider,
a contrast check of colours against the text the page writes on them, and the latest changes."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.roles import Role
from dashboard.api import Api
from dashboard.formatting import audit_rows, field_text, flag_help, flag_label
from dashboard.session import can, current_api
from dashboard.text import plain
from dashboard.views import fetched, flash, show_flash, written
from dashboard.widgets import contrast_warning, flag_widget

RECENT_CHANGES = 10


def _same(kind: str, old: Any, new: Any) -> bool:
    return float(old) == float(new) if kind == "number" else old == new


def _typed(kind: str, value: Any) -> Any:
    if kind == "number" and float(value).is_integer():
        return int(value)
    return value


def _read_only(flags: list[dict[str, Any]]) -> None:
    st.info("Sign in (sidebar) with an editor or admin token to change toggles.")
    table = pd.DataFrame([{
        "Toggle": flag_label(f), "Flag": f["key"], "Type": f["type"], "Value": field_text("value", f["value"]),
        "Rollout": field_text("rollout", f["rollout"])} for f in flags],
        columns=["Toggle", "Flag", "Type", "Value", "Rollout"])
    st.dataframe(table, hide_index=True, width="stretch")


def render(api: Api, editor: bool, admin: bool) -> None:
    st.header("Feature toggles")
    show_flash()
    flags = fetched("Toggles are unavailable", api.flags)
    if flags is None:
        return
    if not editor:
        _read_only(flags)
        return

    edits = {}
    for flag in flags:
        with st.container(border=True):
            value_col, rollout_col = st.columns([3, 2])
            with value_col:
                value = flag_widget(flag, flag["key"], plain(flag_label(flag)), help_text=plain(flag_help(flag)))
                if flag["type"] == "color":
                    contrast_warning(value)
            with rollout_col:
                rollout = st.slider("Rollout (% of visitors)", 0, 100, int(round(flag["rollout"] * 100)),
                                    key=f"rollout_{flag['key']}")
        edits[flag["key"]] = (flag, value, rollout / 100)

    if st.button("Save toggles", type="primary", key="save_toggles"):
        values = {k: _typed(f["type"], v) for k, (f, v, _) in edits.items() if not _same(f["type"], f["value"], v)}
        rollouts = {k: r for k, (f, _, r) in edits.items() if abs(f["rollout"] - r) > 1e-9}

        def save() -> None:
            if values:
                api.save_config(values)
            for key, rollout in rollouts.items():
                api.update_flag(key, {"rollout": rollout})

        if written("Not saved", save):
            changed = sorted(set(values) | set(rollouts))
            flash(f"Saved: {', '.join(changed)}" if changed else "Nothing changed.", "success" if changed else "info")
            st.rerun()

    if not admin:  # the audit log is the admin's
        return
    st.subheader("Latest changes to toggles", anchor=False)
    entries = fetched("Audit log unavailable", api.audit)
    if entries is not None:
        recent = [e for e in entries if e.get("entity") == "flag"][:RECENT_CHANGES]
        st.dataframe(audit_rows(recent), hide_index=True, width="stretch")
        st.caption("Every change to toggles and experiments is on the Audit log page.")


render(current_api(), can(Role.EDITOR), can(Role.ADMIN))
