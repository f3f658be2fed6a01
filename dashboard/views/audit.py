"""Audit log: one row per change to a flag or an experiment (who, when, what, old → new of the fields
that changed), newest first. Admins only: ab_service answers /audit to a token of the admin role."""
from __future__ import annotations

import streamlit as st

from core.roles import Role
from dashboard.api import Api
from dashboard.formatting import audit_rows
from dashboard.session import can, current_api
from dashboard.views import fetched


def render(api: Api, admin: bool) -> None:
    st.header("Audit log")
    if not admin:
        st.info("Sign in (sidebar) with an admin token to read the audit log.")
        return
    entries = fetched("Audit log unavailable", api.audit)
    if entries is None:
        return
    table = audit_rows(entries)
    kinds = st.segmented_control("Show", ["Everything", "Toggles", "Experiments"], default="Everything",
                                 key="audit_kind")
    if kinds == "Toggles":
        table = table[table["What"].str.startswith("flag ")]
    elif kinds == "Experiments":
        table = table[table["What"].str.startswith("experiment ")]
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"The latest {len(entries)} changes, newest first.")


render(current_api(), can(Role.ADMIN))
