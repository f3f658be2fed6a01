"""The landing page, and the same-origin endpoints the browser reports clicks and signups to."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from core.events import parse_events
from core.experiments import DEFAULT_EXPERIMENT
from core.flags import COLOR_PATTERN, default_value
from core.ratelimit import RateLimited
from core.web import ApiError, json_body
from landing.bots import is_bot

bp = Blueprint("landing", __name__)

VISITOR_COOKIE = "ll_vid"
COOKIE_MAX_AGE = 365 * 24 * 3600
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _visitor_id() -> tuple[str, bool]:
    """The visitor's id from the first-party cookie, and whether it is new."""
    raw = request.cookies.get(VISITOR_COOKIE, "")
    try:
        return str(uuid.UUID(raw)), False
    except ValueError:
        return str(uuid.uuid4()), True


def _remember(response, visitor_id: str):
    response.set_cookie(
        VISITOR_COOKIE, visitor_id, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True, secure=request.is_secure
    )
    return response


def _limit(visitor_id: str) -> None:
    """Per-visitor and per-client-address limits on the public event endpoints: 429 with Retry-After."""
    limits = current_app.extensions["rate_limits"]
    try:
        limits.hit("ip", request.remote_addr or "")
        limits.hit("visitor", visitor_id)
    except RateLimited as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc


def record(visitor_id: str, assignment: dict[str, Any], event_type: str, event_id: str | None = None,
           properties: dict[str, Any] | None = None, forced: bool = False) -> str:
    """Validate one event with the shared schema and commit it to the outbox; returns its event_id.
    The event carries the time of the visit, so it keeps it however late it is delivered."""
    event = {
        "event_id": event_id or str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "visitor_id": visitor_id,
        "experiment": DEFAULT_EXPERIMENT,
        "variant": assignment["variant"],
        "event_type": event_type,
        "in_experiment": assignment.get("in_experiment", True),
        "forced": forced,
        "bot": is_bot(request.headers.get("User-Agent")),
    }
    if properties:
        event["properties"] = properties
    [parsed] = parse_events(event)
    wire = parsed.model_dump(mode="json", exclude_none=True)
    current_app.extensions["outbox"].enqueue([wire])
    return wire["event_id"]


def _ab():
    return current_app.extensions["ab_client"]


def _assignment(visitor_id: str) -> dict[str, Any]:
    return _ab().assignment(visitor_id, DEFAULT_EXPERIMENT)


def _forced_variant(value: str | None) -> str | None:
    """A QA override (?force_variant=B): honoured only for a variant the experiment has."""
    if not value:
        return None
    experiment = _ab().experiment(DEFAULT_EXPERIMENT)
    return value if experiment is not None and value in experiment.variant_names else None


def _page(visitor_id: str, variant: str, toggles: dict[str, Any], status: int = 200, forced: bool = False,
          signed_up: bool = False, form_error: str | None = None):
    html = render_template("page.html", variant=variant, toggles=toggles, forced=forced,
                           signed_up=signed_up, form_error=form_error)
    response = current_app.response_class(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return _remember(response, visitor_id)


@bp.get("/")
def index():
    visitor_id, _ = _visitor_id()
    forced = _forced_variant(request.args.get("force_variant"))
    assignment = {"variant": forced, "in_experiment": True} if forced else _assignment(visitor_id)
    toggles = _ab().flags_for(visitor_id)
    record(visitor_id, assignment, "page_view", properties={"path": "/"}, forced=bool(forced))
    return _page(visitor_id, assignment["variant"], toggles, forced=bool(forced),
                 signed_up=request.args.get("signed_up") == "1")


@bp.get("/theme.css")
def theme():
    """The visitor's accent colour as a CSS variable (a validated #rrggbb value; no inline styles needed)."""
    visitor_id, _ = _visitor_id()
    color = _ab().flags_for(visitor_id).get("accent_color")
    if not isinstance(color, str) or not COLOR_PATTERN.match(color):
        color = default_value("accent_color")
    response = current_app.response_class(f":root {{ --accent: {color}; }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/track")
def track():
    """Browser-reported CTA clicks: {"event_type": "cta_click", "event_id": "<uuid>", "forced_variant"?: "B"}."""
    visitor_id, new = _visitor_id()
    if new:
        raise ApiError(400, "no visitor cookie: load the page first", code="no_visitor")
    _limit(visitor_id)
    body = json_body()
    if not isinstance(body, dict) or body.get("event_type") != "cta_click":
        raise ApiError(400, "only cta_click is reported here",
                       [{"field": "event_type", "message": "must be cta_click"}])
    forced = _forced_variant(body.get("forced_variant"))
    assignment = {"variant": forced, "in_experiment": True} if forced else _assignment(visitor_id)
    event_id = record(visitor_id, assignment, "cta_click", body.get("event_id"), forced=bool(forced))
    return {"recorded": "cta_click", "event_id": event_id}, 202


def _email_problem(email: Any) -> str | None:
    if not isinstance(email, str) or not email.strip():
        return "Please enter your email address."
    if len(email) > 254 or not EMAIL_PATTERN.match(email.strip()):
        return "That does not look like an email address."
    return None


@bp.post("/signup")
def signup():
    """The signup form: JSON from the page's script, or a plain form post without JavaScript.

    The email address is checked for shape and then dropped: only the form_submit event is stored.
    """
    wants_json = request.is_json
    visitor_id, new = _visitor_id()
    _limit(visitor_id)
    toggles = _ab().flags_for(visitor_id)
    data = json_body() if wants_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        raise ApiError(400, "body must be a JSON object", code="invalid_json")
    problem = "Please load the page before signing up." if new else _email_problem(data.get("email"))
    if problem is None and not toggles.get("enable_signup_form", True):
        problem = "Signups are closed right now."
    if problem:
        if wants_json:
            raise ApiError(400, problem, [{"field": "email", "message": problem}], code="invalid_signup")
        return _page(visitor_id, _assignment(visitor_id)["variant"], toggles, status=400, form_error=problem)
    forced = _forced_variant(data.get("forced_variant"))
    assignment = {"variant": forced, "in_experiment": True} if forced else _assignment(visitor_id)
    event_id = data.get("event_id") if wants_json else None
    record(visitor_id, assignment, "form_submit", event_id, forced=bool(forced))
    if wants_json:
        return {"recorded": "form_submit", "message": "Thanks! You're on the list."}, 202
    return redirect(url_for("landing.index", signed_up=1, _anchor="signup"), code=303)
