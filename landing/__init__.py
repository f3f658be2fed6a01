"""landing: the visitor-facing page, rendered on the server from the experiments the visitor is in."""
from __future__ import annotations

import atexit
import hashlib
import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from core.db import make_engine, ping
from core.http import bearer, make_session
from core.openapi import openapi_blueprint
from core.ratelimit import RateLimits
from core.settings import Settings
from core.web import create_base_app, health_blueprint
from landing.definitions import Refresher
from landing.geo import Countries
from landing.outbox import ASSIGNMENTS, EVENTS, Destination, Outbox
from landing.sticky import StickyCookie, load_secret
from landing.store import init_schema

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """The app, configured by `settings` (tests pass their own) or else by the process environment."""
    settings = settings or Settings.from_env("landing")
    app = create_base_app(__name__, settings)
    if settings.proxy_hops:
        # Behind N trusted proxies, the client address comes from X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    # Counted where every worker sees them: by default in the service's own database.
    app.extensions["rate_limits"] = RateLimits({"visitor": settings.rate_limit_visitor, "ip": settings.rate_limit_ip},
                                               settings.rate_limit_storage_uri or settings.database_url)
    secret = load_secret(settings.secret_key, settings.data_dir)
    app.extensions["sticky"] = StickyCookie(secret)
    # The per-address rate limit counts a keyed hash of the address: the limits' table holds no address.
    app.extensions["address_key"] = hashlib.sha256(f"rate-limit-address:{secret}".encode()).digest()
    app.extensions["countries"] = Countries(settings.geoip_database)

    engine = make_engine(settings.database_url)
    init_schema(engine)

    if not settings.ab_service_token:
        log.warning("AB_SERVICE_TOKEN is not set: flags and experiments are read from ab_service only if it "
                    "serves reads to anyone (PUBLIC_READS=true)")
    # Flags and experiments are read with a viewer-or-better token of ab_service (core.roles: READ).
    refresher = Refresher(engine, settings.ab_service_url, make_session(
        retries=0, timeout=(0.3, 1.0), headers=bearer(settings.ab_service_token)), settings.refresh_seconds)
    refresher.load()
    app.extensions["definitions"] = refresher
    if settings.refresh_seconds > 0:
        refresher.start()
        atexit.register(refresher.stop)

    if not settings.ingest_key:
        log.warning("INGEST_KEY is not set: metrics_service will refuse events and ab_service new assignments, "
                    "which stay in the outbox")
    # The outbox delivers with the ingest key metrics_service requires on POST /events, and ab_service
    # on POST /assignments.
    outbox = Outbox(engine, [
        Destination(destination, url, make_session(retries=0, timeout=(0.5, 5.0), headers=bearer(settings.ingest_key)))
        for destination, url in ((EVENTS, settings.metrics_service_url + "/events"),
                                 (ASSIGNMENTS, settings.ab_service_url + "/assignments"))
    ], max_backoff=settings.outbox_max_backoff)
    app.extensions["outbox"] = outbox
    if settings.outbox_autostart:
        outbox.start(settings.outbox_interval_seconds)
        atexit.register(outbox.stop)

    from landing import openapi as landing_openapi
    from landing import views

    app.register_blueprint(openapi_blueprint(landing_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine)))
    app.register_blueprint(views.bp)
    return app
