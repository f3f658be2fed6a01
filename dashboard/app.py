"""Landing Lab dashboard: one page per view, each with its own URL (`st.navigation`), and the sign-in box.

Served by `streamlit run dashboard/server.py` (which adds the browser id cookie that keeps an admin
signed in across reloads); `streamlit run dashboard/app.py` works too, with sessions that end on reload.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` puts only dashboard/ on the path

from dashboard import session  # noqa: E402
from dashboard.api import BackendError  # noqa: E402
from dashboard.text import plain  # noqa: E402

# One flat list: Streamlit's sectioned navigation breaks list semantics (axe-core: list, listitem).
PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/results.py", title="Experiment results", icon=":material/insights:", url_path="results"),
    st.Page("views/metrics.py", title="Metrics", icon=":material/rule:", url_path="metrics"),
    st.Page("views/stats.py", title="Stats", icon=":material/bar_chart:", url_path="stats"),
    st.Page("views/traffic.py", title="Traffic", icon=":material/travel_explore:", url_path="traffic"),
    st.Page("views/explore.py", title="Explore", icon=":material/timeline:", url_path="explore"),
    st.Page("views/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
    st.Page("views/flags.py", title="Feature toggles", icon=":material/toggle_on:", url_path="toggles"),
    st.Page("views/audit.py", title="Audit log", icon=":material/history:", url_path="audit"),
    st.Page("views/webhooks.py", title="Webhooks", icon=":material/webhook:", url_path="webhooks"),
]
TOKEN_HINT = ("A token of API_TOKENS (viewer, analyst, editor or admin), or the admin token in data/admin_token "
              "(make run writes it there).")
LOGO, ICON = Path(__file__).with_name("logo.svg"), Path(__file__).with_name("icon.svg")  # served by the dashboard

st.set_page_config(page_title="Landing Lab", page_icon=str(ICON), layout="wide")
st.logo(str(LOGO), size="large", icon_image=str(ICON))
session.restore()
page = st.navigation(PAGES)

with st.sidebar:
    identity = session.signed_in_as()
    if identity:
        st.success(plain(f"Signed in as {identity['name']} ({identity['role']})"), icon=":material/verified_user:")
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()
    else:
        with st.form("sign_in_form", border=False):
            candidate = st.text_input("Token", type="password", key="admin_password")
            st.caption(TOKEN_HINT)
            submitted = st.form_submit_button("Sign in", key="sign_in")
        if submitted:
            try:
                accepted = session.sign_in(candidate.strip())
            except BackendError as exc:
                st.error(f"Cannot check the token: {plain(exc)}")
            else:
                if accepted:
                    st.rerun()
                st.error("That token is not accepted.")
    st.divider()
    auto_refresh = st.toggle("Auto-refresh every 10 s", value=False, key="auto_refresh")

if auto_refresh:
    st.fragment(run_every=10)(page.run)()
else:
    page.run()
