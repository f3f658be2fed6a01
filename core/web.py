"""Flask pieces every service shares: base app set-up, JSON errors, admin auth, CORS, health."""
from __future__ import annotations

import hmac
import io
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask_cors import CORS
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from core.events import EventValidationError
from core.ratelimit import RateLimited
from core.settings import Settings
from core.validation import InvalidRecord, RecordProblem, UnreadableRecord, field_errors

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON: {"error": code, "message": ..., "errors": [...]}."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.code = code or {400: "bad_request", 401: "unauthorized", 404: "not_found",
                             429: "too_many_requests"}.get(status, "error")


def error_body(code: str, message: str, errors: list[dict] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return body


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = jsonify(error_body(exc.code, exc.message, exc.errors))
        response.status_code = exc.status
        response.headers.update(exc.headers)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="landing-lab"'
        return response

    @app.errorhandler(EventValidationError)
    def _invalid_events(exc: EventValidationError):
        response = jsonify(error_body("invalid_events", f"{len(exc.errors)} problem(s) in the events", exc.errors))
        response.status_code = 400
        return response

    @app.errorhandler(InvalidRecord)
    def _invalid_record(exc: InvalidRecord):
        return _api_error(ApiError(400, f"invalid {exc.entity} {exc.key!r}: {exc.fields}", exc.problems))

    @app.errorhandler(UnreadableRecord)
    def _unreadable_record(exc: UnreadableRecord):
        return _api_error(ApiError(
            409, f"the stored {exc.entity} {exc.key!r} does not fit its schema ({exc.fields}); "
                 "an admin can repair it with PATCH", exc.problems, code="unreadable_record"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(error_body(code, exc.description or exc.name))
        response.status_code = exc.code or 500
        for header in ("Allow", "Retry-After"):
            if exc.get_response().headers.get(header):
                response.headers[header] = exc.get_response().headers[header]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = jsonify(error_body("internal_error", "unexpected server error"))
        response.status_code = 500
        return response


def create_base_app(import_name: str, settings: Settings) -> Flask:
    """A Flask app configured by settings, with JSON errors, body limit and CORS."""
    app = Flask(import_name)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.sort_keys = False
    register_error_handlers(app)
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, lambda: app.config["MAX_CONTENT_LENGTH"])
    app.before_request(reject_nul_characters)
    add_security_headers(app)
    if settings.cors_origins:
        # An explicit allowlist; never "*". Browsers elsewhere get no CORS headers at all.
        CORS(app, origins=list(settings.cors_origins), allow_headers=["Content-Type", "Authorization"])
    return app


def settings() -> Settings:
    """The settings of the app handling the current request."""
    return current_app.config["SETTINGS"]


def parse_model(model: type[BaseModel], data: Any, what: str = "body"):
    """Validate data into a pydantic model; a 400 ApiError listing every problem otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = field_errors(exc)
        fields = ", ".join(sorted({str(p["field"]) for p in problems if p["field"]})) or what
        raise ApiError(400, f"invalid {what}: {fields}", problems) from exc


class ChunkedBodyLimit:
    """WSGI middleware that turns a chunked request body into an ordinary one with a Content-Length.

    A body sent with `Transfer-Encoding: chunked` has no Content-Length, so werkzeug would neither
    refuse it up front nor let `reject_nul_characters` look at it, and reading it through
    `request.stream` silently stops at MAX_CONTENT_LENGTH (the view then sees truncated JSON). Here
    the body is read once, up to one byte past the limit, and handed on with its length: every check
    made on Content-Length bodies (413 over the limit, 400 for NUL characters) then applies to it.
    Only servers that de-chunk the body and say so (`wsgi.input_terminated`: gunicorn, werkzeug's
    server) are trusted to end the stream; otherwise werkzeug reads such a body as empty.
    """

    def __init__(self, wsgi_app, limit: Callable[[], int]):
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            body = read_at_most(environ["wsgi.input"], self.limit() + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))  # over the limit: werkzeug answers 413 on reading
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.wsgi_app(environ, start_response)


def read_at_most(stream, size: int) -> bytes:
    """Up to size bytes from a stream that may return fewer per read; stops at its end."""
    parts, left = [], size
    while left > 0:
        part = stream.read(min(left, 64 * 1024))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def reject_nul_characters() -> None:
    """NUL characters are refused everywhere: PostgreSQL cannot store them and no real input has them."""
    if any("\x00" in value for value in request.args.values()) or "\x00" in request.path:
        raise ApiError(400, "NUL characters are not accepted", code="invalid_input")
    if request.content_length and request.content_length <= current_app.config["MAX_CONTENT_LENGTH"]:
        raw = request.get_data(cache=True)
        if b"\x00" in raw or b"\\u0000" in raw:
            raise ApiError(400, "NUL characters are not accepted", code="invalid_input")


def listing(name: str, items: list[Any], unreadable: list[RecordProblem]) -> dict[str, Any]:
    """A list answer: {name: items}, and when some stored records could not be read,
    "unreadable": [{"key", "errors"}] naming each one and what is wrong with it."""
    body: dict[str, Any] = {name: items}
    if unreadable:
        body["unreadable"] = [{"key": exc.key, "errors": exc.problems} for exc in unreadable]
    return body


def json_body() -> Any:
    """The request's JSON body; a clear 400 when it is missing or malformed."""
    if not request.get_data(cache=True):
        raise ApiError(400, "request body must be JSON", code="invalid_json")
    try:
        return request.get_json(force=True)
    except HTTPException as exc:
        raise ApiError(400, "request body is not valid JSON", code="invalid_json") from exc
    except RecursionError as exc:
        raise ApiError(400, "request body is nested too deeply", code="invalid_json") from exc


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected token matches nothing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def token_owner(given: str | None) -> str | None:
    """The name of the admin token given ("admin" for ADMIN_TOKEN), or None. Checks every token."""
    known = [("admin", settings().admin_token), *settings().named_tokens]
    owner = None
    for name, token in known:
        if token_matches(given, token) and owner is None:
            owner = name
    return owner


def require_admin(view: Callable) -> Callable:
    """Writes need `Authorization: Bearer <admin token>`; 401 otherwise. Sets g.actor to the token's name."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        owner = token_owner(bearer_token())
        if owner is None:
            raise ApiError(401, "a valid admin token is required (Authorization: Bearer <token>)")
        g.actor = owner
        return view(*args, **kwargs)

    return wrapper


def ingest_sender() -> str:
    """Who sends events: "ingest" for `Authorization: Bearer <INGEST_KEY>`, an admin token's name for an
    admin token; 401 otherwise. With no INGEST_KEY configured only an admin token is accepted."""
    given = bearer_token()
    ingest_key = settings().ingest_key
    is_ingest = token_matches(given, ingest_key)
    owner = token_owner(given)  # compared either way, so the time taken does not tell which kind matched
    if is_ingest:
        return "ingest"
    if owner is not None:
        return owner
    if not ingest_key:
        raise ApiError(401, "ingest is refused: this server has no ingest key configured (set INGEST_KEY)")
    raise ApiError(401, "a valid ingest key is required (Authorization: Bearer <INGEST_KEY>)")


def hit_limit(scope: str, key: str) -> None:
    """Count one request against the app's named rate limit for key; 429 with Retry-After when spent."""
    try:
        current_app.extensions["rate_limits"].hit(scope, key)
    except RateLimited as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc


def health_blueprint(check: Callable[[], bool]) -> Blueprint:
    """GET /health: 200 {"status": "ok"} when check() holds, 503 otherwise."""
    bp = Blueprint("health", __name__)

    @bp.get("/health")
    def health():
        if check():
            return {"status": "ok"}
        return {"status": "unavailable", "message": "database does not answer"}, 503

    return bp


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}


def add_security_headers(app: Flask) -> None:
    """Every response gets nosniff; HTML responses also get CSP, referrer and framing rules."""

    @app.after_request
    def _headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response


def run_dev_server(app: Flask, port: int) -> None:
    """`python -m <service>`: the threaded development server, stopping cleanly on SIGTERM or Ctrl-C
    (atexit hooks run, so the landing service flushes its outbox before it exits)."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=port, threaded=True)
