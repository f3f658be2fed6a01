"""Flask pieces every service shares: base app set-up, JSON errors, roles, CORS, health."""
from __future__ import annotations

import hmac
import io
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask_cors import CORS
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from core.events import EventValidationError
from core.ratelimit import RateLimited
from core.roles import INGEST, Access, allows, lowest_role, required
from core.settings import NamedToken, Settings
from core.validation import InvalidRecord, RecordProblem, UnreadableRecord, field_errors

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON: {"error": code, "message": ..., "errors": [...]}."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.details = details or {}  # more fields of the answer, such as the role a 403 asks for
        self.code = code or {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                             429: "too_many_requests"}.get(status, "error")


def error_body(code: str, message: str, errors: list[dict] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message, **(details or {})}
    if errors is not None:
        body["errors"] = errors
    return body


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = jsonify(error_body(exc.code, exc.message, exc.errors, exc.details))
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
    app.before_request(lambda: authorize(import_name))  # import_name: the service, as core.roles names it
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
    if "\x00" in request.path or request.query_string and any("\x00" in value for value in request.args.values()):
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


def token_holder(given: str | None) -> NamedToken | None:
    """The named token given, or None. Compares with every token, so the time taken tells nothing."""
    holder = None
    for named in settings().tokens:
        if token_matches(given, named.token) and holder is None:
            holder = named
    return holder


def ingest_sender() -> str:
    """Who sends events: "ingest" for `Authorization: Bearer <INGEST_KEY>`, an admin token's name for an
    admin token; 401 otherwise (403 for a token of a lower role). With no INGEST_KEY configured only an
    admin token is accepted."""
    given = bearer_token()
    ingest_key = settings().ingest_key
    is_ingest = token_matches(given, ingest_key)
    holder = token_holder(given)  # compared either way, so the time taken does not tell which kind matched
    if is_ingest:
        return "ingest"
    if holder is not None and allows(INGEST, holder.role):
        return holder.name
    if holder is not None:
        raise forbidden(INGEST, holder)
    if not ingest_key:
        raise ApiError(401, "ingest is refused: this server has no ingest key configured (set INGEST_KEY)")
    raise ApiError(401, "a valid ingest key is required (Authorization: Bearer <INGEST_KEY>)")


def forbidden(access: Access, holder: NamedToken) -> ApiError:
    """403 naming the role the route needs and the role of the token given."""
    need = lowest_role(access)
    return ApiError(403, f"this needs the {need.label} role{' (or the ingest key)' if access == INGEST else ''}; "
                         f"the token of {holder.name} has the {holder.role.label} role",
                    code="forbidden", details={"required_role": need.label, "role": holder.role.label})


def authorize(service: str) -> None:
    """Before each request: what the permission matrix (core.roles) asks of the route. Sets g.actor (the
    token's name, or "ingest") and g.role; 401 without a valid token where one is needed, 403 with a token
    whose role is too low."""
    rule = request.url_rule
    if rule is None or request.method == "OPTIONS":
        return  # no such route (404/405 follow), or a CORS preflight, which carries no credentials
    access = required(service, "GET" if request.method == "HEAD" else request.method, rule.rule)
    if access == INGEST:
        g.actor = ingest_sender()
        return
    holder = token_holder(bearer_token())
    if holder is not None:
        g.actor, g.role = holder.name, holder.role
    if allows(access, holder.role if holder else None, settings().public_reads):
        return
    if holder is None:
        raise ApiError(401, f"a valid token with the {lowest_role(access).label} role or higher is required "
                            "(Authorization: Bearer <token>)")
    raise forbidden(access, holder)


def whoami_blueprint() -> Blueprint:
    """GET /whoami: the name and role of the token sent (the dashboard's sign-in asks it)."""
    bp = Blueprint("whoami", __name__)

    @bp.get("/whoami")
    def whoami():
        return {"name": g.actor, "role": g.role.label}

    return bp


def hit_limit(scope: str, key: str) -> None:
    """Count one request against the app's named rate limit for key; 429 with Retry-After when spent."""
    try:
        current_app.extensions["rate_limits"].hit(scope, key)
    except RateLimited as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc


def health_blueprint(check: Callable[[], bool], report: Callable[[], dict[str, Any]] | None = None) -> Blueprint:
    """GET /health: 200 {"status": "ok"} when check() holds, 503 otherwise. `report()`, when given,
    adds the service's own state to a 200 answer; a "status" in it ("degraded": working, but
    something needs a look) replaces "ok"."""
    bp = Blueprint("health", __name__)

    @bp.get("/health")
    def health():
        if check():
            try:
                return {"status": "ok", **(report() if report is not None else {})}
            except SQLAlchemyError:
                log.warning("health: the database stopped answering", exc_info=True)
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
