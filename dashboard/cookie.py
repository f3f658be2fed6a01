"""The browser id: a random value the dashboard's server gives each browser in an HttpOnly cookie.

It names a browser, nothing more: it carries no token and no rights. A signed-in admin session is kept
on the server under (a hash of) this id (see dashboard/session.py), so a reload finds it again while the
admin token never reaches the browser, the URL or the browser's storage.
"""
from __future__ import annotations

import re
import secrets
from http.cookies import CookieError, SimpleCookie

COOKIE = "ll_dashboard"
MAX_AGE_SECONDS = 30 * 24 * 3600  # the id lives a month; a session under it ends much sooner
SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_urlsafe(32)


def valid(value: str | None) -> bool:
    return isinstance(value, str) and bool(SHAPE.match(value))


def _request_cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed Cookie header counts as no cookie
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _secure(headers: list[tuple[bytes, bytes]], scheme: str) -> bool:
    forwarded = dict(headers).get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[0].strip()
    return scheme == "https" or forwarded == "https"


class BrowserIdMiddleware:
    """ASGI middleware: an HTML answer to a browser without a valid id sets a new one."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or valid(_request_cookie(scope.get("headers", []))):
            return await self.app(scope, receive, send)
        secure = _secure(scope.get("headers", []), scope.get("scheme", "http"))

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    cookie = (f"{COOKIE}={new_id()}; Path=/; Max-Age={MAX_AGE_SECONDS}; HttpOnly; SameSite=Strict"
                              + ("; Secure" if secure else ""))
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)
