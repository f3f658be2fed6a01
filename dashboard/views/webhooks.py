"""Webhooks: where alerts are sent (admins only). Add one (URL, events, an optional secret), see each
one's deliveries done and pending, delete one after a confirmation. A new webhook's secret is shown
once, right after it is added: ab_service never answers it again."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.roles import Role
from core.webhooks import EVENTS
from dashboard.api import Api, BackendError
from dashboard.session import can, current_api
from dashboard.text import plain
from dashboard.views import fetched, flash, show_flash

SECRET_KEY = "webhook_secret"  # the secret of the webhook just added, shown on the next run only


def _table(webhooks: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"URL": w["url"], "Events": ", ".join(w["events"]), "Delivered": w["delivered"], "Pending": w["pending"],
          "Added": w["created_at"], "By": w["created_by"]} for w in webhooks],
        columns=["URL", "Events", "Delivered", "Pending", "Added", "By"])


def _add(api: Api) -> None:
    with st.form("new_webhook"):
        st.subheader("Add a webhook", anchor=False)
        url = st.text_input("URL", key="webhook_url", placeholder="https://hooks.example.com/landing-lab")
        events = st.multiselect("Events", list(EVENTS), key="webhook_events")
        secret = st.text_input("Secret (optional: one is generated)", key="webhook_given_secret", type="password")
        submitted = st.form_submit_button("Add webhook", type="primary", key="webhook_add")
    if not submitted:
        return
    body: dict[str, Any] = {"url": url.strip(), "events": events}
    if secret.strip():
        body["secret"] = secret.strip()
    try:
        created = api.create_webhook(body)
    except BackendError as exc:
        st.error(f"Not added: {plain(exc)}")
        return
    st.session_state[SECRET_KEY] = created["secret"]
    flash(f"Added the webhook to {created['url']}.")
    st.rerun()


def _delete(api: Api, webhooks: list[dict[str, Any]]) -> None:
    labels = {w["id"]: f"{w['url']} ({', '.join(w['events'])})" for w in webhooks}
    chosen = st.selectbox("Webhook", list(labels), format_func=labels.get, key="webhook_choice")
    if st.session_state.get("pending_webhook_delete") == chosen:
        st.warning(plain(f"Delete the webhook to {labels[chosen]}? Its pending deliveries are dropped."))
        left, right = st.columns(2)
        if left.button("Yes, delete it", key="confirm_webhook_delete", type="primary"):
            st.session_state.pop("pending_webhook_delete", None)
            try:
                api.delete_webhook(chosen)
            except BackendError as exc:
                flash(f"Not deleted: {exc}", "error")
            else:
                flash(f"Deleted the webhook to {labels[chosen]}.")
            st.rerun()
        if right.button("Cancel", key="cancel_webhook_delete"):
            st.session_state.pop("pending_webhook_delete", None)
            st.rerun()
    elif st.button("Delete webhook", key="ask_webhook_delete"):
        st.session_state["pending_webhook_delete"] = chosen
        st.rerun()


def render(api: Api, admin: bool) -> None:
    st.header("Webhooks")
    if not admin:
        st.info("Sign in (sidebar) with an admin token to manage webhooks.")
        return
    show_flash()
    secret = st.session_state.pop(SECRET_KEY, None)
    if secret:
        st.warning("Copy the webhook's secret now: it is not shown again. Receivers check each payload's "
                   "Landing-Lab-Signature header with it (see the README).")
        st.code(secret, language=None)
    webhooks = fetched("Webhooks are unavailable", api.webhooks)
    if webhooks is None:
        return
    if webhooks:
        st.dataframe(_table(webhooks), hide_index=True, width="stretch")
        _delete(api, webhooks)
    else:
        st.caption("No webhooks yet: alerts are kept, and sent to webhooks added later only when raised again.")
    _add(api)


render(current_api(), can(Role.ADMIN))
