"""landing: the visitor-facing page, rendered on the server for the visitor's variant."""
from __future__ import annotations

import atexit
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from core.db import make_engine, ping
from core.http import make_session
from core.openapi import openapi_blueprint
from core.ratelimit import RateLimits
from core.settings import Settings
from core.web import create_base_app, health_blueprint
from landing.clients import AbClient
from landing.outbox import Outbox


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    settings = Settings.from_env("landing")
    app = create_base_app(__name__, settings, test_config)
    app.config.setdefault("AB_SERVICE_URL", settings.ab_service_url)
    app.config.setdefault("METRICS_SERVICE_URL", settings.metrics_service_url)
    app.config.setdefault("CONFIG_TTL_SECONDS", 1.0)
    app.config.setdefault("OUTBOX_AUTOSTART", True)
    app.config.setdefault("OUTBOX_INTERVAL_SECONDS", 0.5)
    app.config.setdefault("RATE_LIMIT_VISITOR", settings.rate_limit_visitor)
    app.config.setdefault("RATE_LIMIT_IP", settings.rate_limit_ip)
    if settings.proxy_hops:
        # Behind N trusted proxies, the client address comes from X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    app.extensions["rate_limits"] = RateLimits(
        {"visitor": app.config["RATE_LIMIT_VISITOR"], "ip": app.config["RATE_LIMIT_IP"]}
    )

    session = make_session(retries=0, timeout=(0.3, 1.0))
    app.extensions["ab_client"] = AbClient(
        app.config["AB_SERVICE_URL"], session, config_ttl=app.config["CONFIG_TTL_SECONDS"]
    )
    engine = make_engine(app.config["DATABASE_URL"])
    outbox = Outbox(engine, app.config["METRICS_SERVICE_URL"], make_session(retries=0, timeout=(0.5, 5.0)),
                    max_backoff=settings.outbox_max_backoff)
    outbox.init_schema()
    app.extensions["outbox"] = outbox
    if app.config["OUTBOX_AUTOSTART"]:
        outbox.start(app.config["OUTBOX_INTERVAL_SECONDS"])
        atexit.register(outbox.stop)

    from landing import openapi as landing_openapi
    from landing import views

    app.register_blueprint(openapi_blueprint(landing_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine)))
    app.register_blueprint(views.bp)
    return app
