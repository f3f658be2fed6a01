"""Landing Lab dashboard: `streamlit run dashboard/app.py`. Lays out the sidebar and the chosen view."""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` puts only dashboard/ on the path

from core.settings import Settings  # noqa: E402
from dashboard.api import Api, BackendError  # noqa: E402
from dashboard.text import plain  # noqa: E402
from dashboard.views import experiments, explore, flags, results, stats  # noqa: E402

VIEWS = {
    "Stats": lambda api, admin: stats.render(api),
    "Experiment results": lambda api, admin: results.render(api),
    "Explore": lambda api, admin: explore.render(api),
    "Feature toggles": flags.render,
    "Experiments": experiments.render,
}

st.set_page_config(page_title="Landing Lab", layout="wide")
settings = Settings.from_env("dashboard")

with st.sidebar:
    st.title("Landing Lab")
    view = st.radio("View", list(VIEWS), key="view")
    st.divider()
    token = st.session_state.get("admin_token")
    if token:
        st.success("Signed in as admin")
        if st.button("Sign out", key="sign_out"):
            st.session_state.pop("admin_token", None)
            st.rerun()
    else:
        candidate = st.text_input("Admin token", type="password", key="admin_password")
        if st.button("Sign in", key="sign_in"):
            try:
                accepted = Api(settings).check_token(candidate) if candidate else False
            except BackendError as exc:
                st.error(f"Cannot check the token: {plain(exc)}")
            else:
                if accepted:
                    st.session_state["admin_token"] = candidate
                    st.rerun()
                else:
                    st.error("That token is not accepted.")
    st.divider()
    auto_refresh = st.toggle("Auto-refresh every 10 s", value=False, key="auto_refresh")

api = Api(settings, st.session_state.get("admin_token"))
admin = bool(st.session_state.get("admin_token"))


@st.fragment(run_every=10 if auto_refresh else None)
def main_view() -> None:
    VIEWS[view](api, admin)


main_view()
