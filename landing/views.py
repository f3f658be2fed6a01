"""The landing page, and the same-origin endpoints the browser reports clicks and signups to.

None of them calls another service: flags and experiments come from the process's refreshed copy
(landing.definitions), a returning visitor's assignments from their signed cookie (landing.sticky),
and events and new assignments go to the local outbox.

The page's HTML depends only on the flag values shown (and the preview, the signup notice, the
address it is served under), of which a site has few combinations: each process keeps the last
RENDERED pages it rendered and serves them again without running the template.
"""
from __future__ import annotations

import hmac
import json
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.http import dump_cookie

from core.events import SERVER_RECORDED, experiment_event_id, parse_events
from core.flags import COLOR_PATTERN, LAYOUTS, default_value
from core.keys import KEY_PATTERN, MAX_KEY_LENGTH
from core.ratelimit import RateLimited
from core.web import ApiError, json_body
from landing import sticky
from landing.bots import is_bot
from landing.context import exposure_context, visitor_attributes
from landing.definitions import Definitions
from landing.visit import Visit, converted, forced_spec, page, parse_forced, record_under

bp = Blueprint("landing", __name__)

VISITOR_COOKIE = "ll_vid"
COOKIE_MAX_AGE = 365 * 24 * 3600
_PLAIN_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,4000}$")  # UUIDs and itsdangerous signatures
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
RENDERED = 256  # pages kept per process (each some 10 KB)
EVENT_SHAPES = 1024  # (experiment, variant, event type, ...) combinations whose fields are kept per process


@bp.app_template_filter("number")
def _number(value: Any) -> str:
    """A number flag's value as text: 20 and 20.0 read "20", 12.5 reads "12.5"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _visitor_id() -> tuple[str, bool]:
    """The visitor's id from the first-party cookie, and whether it is new."""
    raw = request.cookies.get(VISITOR_COOKIE, "")
    try:
        return str(uuid.UUID(raw)), False
    except ValueError:
        return str(uuid.uuid4()), True


def _set_cookie(response, name: str, value: str) -> None:
    if not _PLAIN_COOKIE_VALUE.match(value):  # werkzeug quotes such values
        response.set_cookie(name, value, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True,
                            secure=request.is_secure)
        return
    response.headers.add("Set-Cookie", f"{name}={value}{_cookie_attributes(name, request.is_secure, int(time.time()))}")


@lru_cache(maxsize=8)
def _cookie_attributes(name: str, secure: bool, second: int) -> str:
    """What werkzeug writes after `name=value` (expiry, flags) for a cookie set at this second: made
    once a second rather than once a response. Only values that need no quoting use it."""
    header = dump_cookie(name, "x", max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True, secure=secure,
                         expires=second + COOKIE_MAX_AGE)
    return header.removeprefix(f"{name}=x")


def _limit(visitor_id: str) -> None:
    """Per-visitor and per-client-address limits on the public event endpoints: 429 with Retry-After."""
    limits = current_app.extensions["rate_limits"]
    address = hmac.new(current_app.extensions["address_key"], (request.remote_addr or "").encode(), "sha256")
    try:
        limits.hit("ip", address.hexdigest() if request.remote_addr else "")
        limits.hit("visitor", visitor_id)
    except RateLimited as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc


def _definitions() -> Definitions:
    return current_app.extensions["definitions"].current()


def _cookie_assignments() -> dict[str, str]:
    """The visitor's remembered assignments; {} for a missing, tampered or malformed cookie."""
    return current_app.extensions["sticky"].loads(request.cookies.get(sticky.COOKIE))


def _action_id(value: Any) -> str:
    """The id the page's script gave an action (a UUID), or a new one."""
    if value is None:
        return str(uuid.uuid4())
    try:
        if isinstance(value, str):
            return str(uuid.UUID(value))
    except ValueError:
        pass
    raise ApiError(400, "event_id must be a UUID", [{"field": "event_id", "message": "must be a UUID"}])


def _assignment_rows(visitor_id: str, new: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"experiment": key, "visitor_id": visitor_id, "variant": variant} for key, variant in sorted(new.items())]


def _events(visitor_id: str, experiments: Mapping[str, str], event_type: str, base: str, forced: bool,
            properties: dict[str, Any] | None = None, context: dict[str, str] | None = None,
            value: float | None = None) -> list[dict[str, Any]]:
    """One event per experiment, validated with the shared schema. Each id is derived from the action's
    id and the experiment, so a retried request stores each event once. Events carry the time of the
    visit, so they keep it however late they are delivered."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    bot = is_bot(request.headers.get("User-Agent"))
    shown = json.dumps(properties, sort_keys=True) if properties else None
    segments = json.dumps(context, sort_keys=True) if context else None
    return [{**_event_fields(experiment, variant, event_type, forced, bot, shown, segments),
             "event_id": experiment_event_id(base, experiment), "timestamp": now, "visitor_id": visitor_id,
             **({"value": value} if value is not None else {})}  # a finite float, checked by /track
            for experiment, variant in sorted(experiments.items())]


@lru_cache(maxsize=EVENT_SHAPES)
def _event_fields(experiment: str, variant: str, event_type: str, forced: bool, bot: bool,
                  properties: str | None, context: str | None) -> dict[str, Any]:
    """The fields an event of this shape has besides its id, time and visitor, as the shared schema
    validates and writes them. Checked once per shape (properties and context as JSON): the rest (a
    UUID visitor id and event id, the time now) always fits the schema."""
    probe = {"event_id": str(uuid.UUID(int=0)), "timestamp": datetime.now(UTC).isoformat(), "visitor_id": "probe",
             "experiment": experiment, "variant": variant, "event_type": event_type, "forced": forced, "bot": bot,
             **({"properties": json.loads(properties)} if properties else {}),
             **({"context": json.loads(context)} if context else {})}
    [event] = parse_events([probe])
    fields = event.model_dump(mode="json", exclude_none=True)
    for name in ("event_id", "timestamp", "visitor_id"):
        del fields[name]
    return fields


def _record(visitor_id: str, experiments: Mapping[str, str], event_type: str, action_id: str | None = None,
            forced: bool = False, properties: dict[str, Any] | None = None,
            new: Mapping[str, str] | None = None, context: dict[str, str] | None = None,
            value: float | None = None) -> None:
    """Commit the action's events (and the visitor's new assignments, for ab_service) to the outbox."""
    events = _events(visitor_id, experiments, event_type, action_id or str(uuid.uuid4()), forced, properties,
                     context, value)
    current_app.extensions["outbox"].enqueue(events, _assignment_rows(visitor_id, new or {}))


def _attributes(visitor_id: str, returning: bool) -> dict[str, Any]:
    return visitor_attributes(visitor_id, returning, request.headers.get("User-Agent"), request.args,
                              request.referrer, request.path)


def _visit(visitor_id: str, returning: bool, definitions: Definitions, forced: Mapping[str, str],
           attributes: dict[str, Any] | None = None) -> Visit:
    attributes = attributes or _attributes(visitor_id, returning)
    return page(definitions, attributes, _cookie_assignments(), forced)


def _accent(values: Mapping[str, Any]) -> str:
    color = values.get("accent_color")
    return color if isinstance(color, str) and COLOR_PATTERN.match(color) else default_value("accent_color")


class PageCache:
    """The last `size` pages rendered, by everything the template reads (least recently used first out)."""

    def __init__(self, size: int = RENDERED):
        self.size = size
        self._pages: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            html = self._pages.get(key)
            if html is not None:
                self._pages.move_to_end(key)
            return html

    def put(self, key: Hashable, html: str) -> None:
        with self._lock:
            self._pages[key] = html
            self._pages.move_to_end(key)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)


def _page_html(values: Mapping[str, Any], accent: str, forced: str, signed_up: bool) -> str:
    """The page (no form error), rendered once per combination and then served from the process's cache.
    A value's type is part of the key: True and 1 are equal in Python but not on the page."""
    key = (request.script_root, accent, forced, signed_up,
           tuple((name, type(value).__name__, value) for name, value in sorted(values.items())))
    try:
        hash(key)
    except TypeError:  # a value that is not a scalar: render every time
        key = None
    cache = current_app.extensions.setdefault("landing_pages", PageCache())
    html = cache.get(key) if key is not None else None
    if html is None:
        html = render_template("page.html", values=values, accent=accent, forced=forced, signed_up=signed_up,
                               form_error=None, email=None)
        if key is not None:
            cache.put(key, html)
    return html


def _render(visitor_id: str, visit: Visit, status: int = 200, signed_up: bool = False,
            form_error: str | None = None, email: str | None = None):
    values = dict(visit.values)
    if values.get("layout") not in LAYOUTS:
        values["layout"] = LAYOUTS[0]
    accent, forced = _accent(visit.values), forced_spec(visit.forced)
    if form_error is None and email is None:
        html = _page_html(values, accent, forced, signed_up)
    else:
        html = render_template("page.html", values=values, accent=accent, forced=forced, signed_up=signed_up,
                               form_error=form_error, email=email)
    response = current_app.response_class(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    _set_cookie(response, VISITOR_COOKIE, visitor_id)
    if not visit.forced:  # a preview changes nothing the visitor keeps
        _set_cookie(response, sticky.COOKIE, current_app.extensions["sticky"].dumps(visit.remembered))
    return response


@bp.get("/")
def index():
    visitor_id, new_visitor = _visitor_id()
    definitions = _definitions()
    attributes = _attributes(visitor_id, not new_visitor)
    visit = _visit(visitor_id, not new_visitor, definitions,
                   parse_forced(request.args.get("force_variant"), definitions), attributes)
    # The exposure carries the visitor's context (device, source, campaign...): derived words only.
    context = exposure_context(attributes, current_app.extensions["countries"].country(request.remote_addr))
    _record(visitor_id, visit.recorded_under, "page_view", forced=bool(visit.forced), properties={"path": "/"},
            new=visit.new, context=context)
    return _render(visitor_id, visit, signed_up=request.args.get("signed_up") == "1")


@bp.get("/theme.css")
def theme():
    """The accent colour the page names (`?accent=%23rrggbb`, validated) as a CSS variable: the page
    keeps free of inline styles under its CSP, and the stylesheet depends on its address alone."""
    accent = request.args.get("accent", default_value("accent_color"))
    if not COLOR_PATTERN.match(accent):
        raise ApiError(400, "accent must be a colour like #1a2b3c", [{"field": "accent", "message": "not #rrggbb"}])
    response = current_app.response_class(f":root {{ --accent: {accent}; }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def _forced(body: Mapping[str, Any], definitions: Definitions) -> dict[str, str]:
    return parse_forced(body.get("forced_variant"), definitions)


@bp.post("/track")
def track():
    """Clicks the page's script reports: {"event_type": "cta_click" or a type named by an element's
    data-track, "event_id": "<uuid>", "value"?: number, "forced_variant"?: "hero:B"}. One event per running
    experiment the visitor was exposed to (the preview's, when forced). A type metrics_service has not
    registered is queued all the same: metrics_service refuses it and the outbox keeps it aside."""
    visitor_id, new = _visitor_id()
    if new:
        raise ApiError(400, "no visitor cookie: load the page first", code="no_visitor")
    _limit(visitor_id)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", code="invalid_json")
    event_type = _tracked_type(body.get("event_type"))
    event_id = _action_id(body.get("event_id"))
    definitions = _definitions()
    forced = _forced(body, definitions)
    experiments = forced or converted(definitions, _cookie_assignments())
    _record(visitor_id, record_under(experiments), event_type, event_id, forced=bool(forced),
            value=_tracked_value(body.get("value")))
    return {"recorded": event_type, "event_id": event_id}, 202


def _tracked_type(event_type: Any) -> str:
    if (not isinstance(event_type, str) or event_type in SERVER_RECORDED or len(event_type) > MAX_KEY_LENGTH
            or not re.match(KEY_PATTERN, event_type)):
        message = f"an event type key other than {', '.join(SERVER_RECORDED)} (recorded by the server)"
        raise ApiError(400, "event_type must be " + message, [{"field": "event_type", "message": message}])
    return event_type


def _tracked_value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, "value must be a finite number", [{"field": "value", "message": "not a finite number"}])
    return float(value)


def _email_problem(email: Any) -> str | None:
    if not isinstance(email, str) or not email.strip():
        return "Please enter your email address."
    if len(email) > 254 or not EMAIL_PATTERN.match(email.strip()):
        return "That does not look like an email address."
    return None


@bp.post("/signup")
def signup():
    """The signup form: JSON from the page's script, or a plain form post without JavaScript.

    The email address is checked for shape and then dropped: only the form_submit events are stored.
    """
    wants_json = request.is_json
    visitor_id, new_visitor = _visitor_id()
    _limit(visitor_id)
    data = json_body() if wants_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        raise ApiError(400, "body must be a JSON object", code="invalid_json")
    definitions = _definitions()
    forced = _forced(data, definitions)
    visit = _visit(visitor_id, not new_visitor, definitions, forced)
    problem = "Please load the page before signing up." if new_visitor else _email_problem(data.get("email"))
    if problem is None and not visit.values.get("enable_signup_form", True):
        problem = "Signups are closed right now."
    if problem:
        if wants_json:
            raise ApiError(400, problem, [{"field": "email", "message": problem}], code="invalid_signup")
        current_app.extensions["outbox"].enqueue(assignments=_assignment_rows(visitor_id, visit.new))
        # The address typed is shown back in the form to correct it (escaped), never stored.
        typed = data.get("email")
        return _render(visitor_id, visit, status=400, form_error=problem,
                       email=typed[:254] if isinstance(typed, str) else None)
    experiments = forced or converted(definitions, _cookie_assignments())
    event_id = _action_id(data.get("event_id")) if wants_json else None
    _record(visitor_id, record_under(experiments), "form_submit", event_id, forced=bool(forced))
    if wants_json:
        return {"recorded": "form_submit", "message": "Thanks! You're on the list."}, 202
    return redirect(url_for("landing.index", signed_up=1, _anchor="signup"), code=303)

