"""The dashboard signs in with any named token, says its role, and shows only what that role may do;
with reads closed (no PUBLIC_READS), a signed-out visitor is asked to sign in instead of shown data."""
from __future__ import annotations

import pytest

from core.roles import Role
from dashboard.text import plain
from tests.helpers import dashboard_backends, open_view

TOKENS = {role: f"{role.label}-dashboard-secret" for role in Role}
API_TOKENS = ",".join(f"{role.label}-user:{role.label}:{token}" for role, token in TOKENS.items())


@pytest.fixture
def closed_backends(tmp_path, monkeypatch):
    """ab_service and metrics_service that answer reads only to a token."""
    with dashboard_backends(tmp_path, monkeypatch, API_TOKENS=API_TOKENS, PUBLIC_READS="false") as both:
        yield both


def asks_to_sign_in(at) -> bool:
    return any("Sign in" in info.value for info in at.info)


# What each role sees on the views that write: (toggle widgets, the toggles' latest changes, the new
# experiment form, the audit log's table, the webhooks page).
SEES = {
    None: (False, False, False, False, False),
    Role.VIEWER: (False, False, False, False, False),
    Role.ANALYST: (False, False, False, False, False),
    Role.EDITOR: (True, False, True, False, False),
    Role.ADMIN: (True, True, True, True, True),
}


@pytest.mark.parametrize("role", list(SEES), ids=lambda role: role.label if role else "signed out")
def test_each_role_sees_what_it_may_do(closed_backends, role):
    toggles, changes, create, audit, webhooks = SEES[role]
    token = TOKENS[role] if role else None

    at = open_view("Feature toggles", token=token)
    if role:
        assert [s.value for s in at.sidebar.success] == [plain(f"Signed in as {role.label}-user ({role.label})")]
    assert ("toggle_show_testimonials" in [t.key for t in at.toggle]) is toggles
    assert any(s.value == "Latest changes to toggles" for s in at.subheader) is changes
    if role:  # a signed-in viewer reads the flags, read-only
        assert toggles or "cta_text" in list(at.dataframe[0].value["Flag"])
    assert asks_to_sign_in(at) is not toggles
    assert not at.error, [e.value for e in at.error]

    at = open_view("Experiments", token=token)
    assert ("new_create" in [b.key for b in at.button]) is create
    assert asks_to_sign_in(at) is not create
    assert not at.error, [e.value for e in at.error]

    at = open_view("Audit log", token=token)
    assert bool(at.dataframe) is audit
    assert asks_to_sign_in(at) is not audit

    at = open_view("Webhooks", token=token)
    assert asks_to_sign_in(at) is not webhooks
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("view", ["Overview", "Stats", "Traffic", "Experiment results"])
def test_signed_out_reads_ask_to_sign_in_and_a_viewer_reads(closed_backends, view):
    at = open_view(view)
    assert asks_to_sign_in(at) and not at.error, [e.value for e in at.error]
    at = open_view(view, token=TOKENS[Role.VIEWER])
    assert not asks_to_sign_in(at) and not at.error, ([i.value for i in at.info], [e.value for e in at.error])


def test_signing_out_forgets_the_role(closed_backends):
    at = open_view("Feature toggles", token=TOKENS[Role.EDITOR])
    at.sidebar.button(key="sign_out").click().run()
    assert not at.sidebar.success
    assert "toggle_show_testimonials" not in [t.key for t in at.toggle] and asks_to_sign_in(at)
