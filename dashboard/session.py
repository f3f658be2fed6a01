"""Who is signed in, with which role, for how long, and the API client of this session.

Any named token signs in (ab_service's GET /whoami says its name and role); the views show what that role may
do (core.roles) and hide the rest. The token stays on the server. After a sign-in it is kept in the Streamlit
session and, when the browser has its id cookie (dashboard/cookie.py), in a server-side store under a hash of
that id until ADMIN_SESSION_HOURS have passed, so a reload (a new Streamlit session) signs the user in again
without the token ever reaching the URL or the browser's storage. Signing out forgets both.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from core.roles import Role
from core.settings import Settings
from dashboard.api import Api, BackendError
from dashboard.cookie import COOKIE, valid

TOKEN_KEY = "admin_token"
IDENTITY_KEY = "signed_in_as"  # {"name", "role"} of the token, as ab_service named them
MAX_SESSIONS = 10_000


def _digest(browser_id: str) -> str:
    return hashlib.sha256(browser_id.encode()).hexdigest()


@dataclass
class SessionStore:
    """Signed-in browsers: hash of the browser id -> (token, expiry as time.time())."""

    entries: dict[str, tuple[str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, browser_id: str, token: str, seconds: float) -> None:
        now = time.time()
        with self.lock:
            self.entries = {k: v for k, v in self.entries.items() if v[1] > now}
            if len(self.entries) >= MAX_SESSIONS:
                self.entries.pop(min(self.entries, key=lambda k: self.entries[k][1]))
            self.entries[_digest(browser_id)] = (token, now + seconds)

    def recall(self, browser_id: str) -> str | None:
        with self.lock:
            token, expires = self.entries.get(_digest(browser_id), (None, 0.0))
            if token is not None and expires <= time.time():
                self.entries.pop(_digest(browser_id), None)
                return None
            return token

    def forget(self, browser_id: str) -> None:
        with self.lock:
            self.entries.pop(_digest(browser_id), None)


@st.cache_resource
def sessions() -> SessionStore:
    """One store per dashboard process (a restart signs everyone out)."""
    return SessionStore()


def settings() -> Settings:
    return Settings.from_env("dashboard")


def browser_id() -> str | None:
    value = st.context.cookies.get(COOKIE)
    return value if valid(value) else None


def restore() -> None:
    """Sign this Streamlit session in again when its browser signed in recently (and the token still works)."""
    if st.session_state.get(TOKEN_KEY):
        return
    browser = browser_id()
    token = sessions().recall(browser) if browser else None
    if token is None:
        return
    try:
        identity = Api(settings()).whoami(token)
    except BackendError:
        return  # ab_service unreachable: keep the session for later, show the dashboard signed out meanwhile
    if identity:
        st.session_state[TOKEN_KEY], st.session_state[IDENTITY_KEY] = token, identity
    else:
        sessions().forget(browser)


def sign_in(token: str) -> bool:
    """True when ab_service accepts the token (of any role); the session is then remembered for this
    browser. BackendError when ab_service cannot say."""
    identity = Api(settings()).whoami(token) if token else None
    if not identity:
        return False
    st.session_state[TOKEN_KEY], st.session_state[IDENTITY_KEY] = token, identity
    browser = browser_id()
    if browser:
        sessions().remember(browser, token, settings().admin_session_hours * 3600)
    return True


def sign_out() -> None:
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state.pop(IDENTITY_KEY, None)
    browser = browser_id()
    if browser:
        sessions().forget(browser)


def signed_in_as() -> dict[str, str] | None:
    """{"name", "role"} of the signed-in token; None when nobody is signed in."""
    return st.session_state.get(IDENTITY_KEY) if st.session_state.get(TOKEN_KEY) else None


def role() -> Role | None:
    identity = signed_in_as()
    return Role.parse(identity["role"]) if identity else None


def can(needed: Role) -> bool:
    """Whether the signed-in role reaches `needed` (nobody signed in: no)."""
    current = role()
    return current is not None and current >= needed


def current_api() -> Api:
    return Api(settings(), st.session_state.get(TOKEN_KEY))
