"""Who is signed in, for how long, and the API client of this session.

The admin token stays on the server. After a sign-in it is kept in the Streamlit session and, when the
browser has its id cookie (dashboard/cookie.py), in a server-side store under a hash of that id until
ADMIN_SESSION_HOURS have passed, so a reload (a new Streamlit session) signs the admin in again without
the token ever reaching the URL or the browser's storage. Signing out forgets both.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from core.settings import Settings
from dashboard.api import Api, BackendError
from dashboard.cookie import COOKIE, valid

TOKEN_KEY = "admin_token"
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
        accepted = Api(settings()).check_token(token)
    except BackendError:
        return  # ab_service unreachable: keep the session for later, show the dashboard signed out meanwhile
    if accepted:
        st.session_state[TOKEN_KEY] = token
    else:
        sessions().forget(browser)


def sign_in(token: str) -> bool:
    """True when ab_service accepts the token; the session is then remembered for this browser.
    BackendError when ab_service cannot say."""
    if not token or not Api(settings()).check_token(token):
        return False
    st.session_state[TOKEN_KEY] = token
    browser = browser_id()
    if browser:
        sessions().remember(browser, token, settings().admin_session_hours * 3600)
    return True


def sign_out() -> None:
    st.session_state.pop(TOKEN_KEY, None)
    browser = browser_id()
    if browser:
        sessions().forget(browser)


def is_admin() -> bool:
    return bool(st.session_state.get(TOKEN_KEY))


def current_api() -> Api:
    return Api(settings(), st.session_state.get(TOKEN_KEY))
