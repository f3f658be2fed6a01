"""ab_service: sticky variant assignment and feature-toggle configuration, schedules and webhook alerts."""
from __future__ import annotations

import atexit

from flask import Flask
from sqlalchemy import Engine

from ab_service.store import AbStore
from core.db import make_engine, ping
from core.openapi import openapi_blueprint
from core.settings import Settings
from core.web import create_base_app, health_blueprint, whoami_blueprint


def create_app(settings: Settings | None = None) -> Flask:
    """The app, configured by `settings` (tests pass their own) or else by the process environment."""
    settings = settings or Settings.from_env("ab_service")
    app = create_base_app(__name__, settings)
    engine = make_engine(settings.database_url)
    store = AbStore(engine)
    store.init_schema()
    app.extensions["ab_store"] = store

    from ab_service import assign, audit, config, experiments, features, flags, schedules, webhooks
    from ab_service import openapi as ab_service_openapi
    from ab_service.jobs import Jobs

    app.register_blueprint(openapi_blueprint(ab_service_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine)))
    app.register_blueprint(assign.bp)
    app.register_blueprint(config.bp)
    app.register_blueprint(flags.bp)
    app.register_blueprint(experiments.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(features.bp)
    app.register_blueprint(schedules.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(whoami_blueprint())

    jobs = Jobs(app, store, settings)
    app.extensions["ab_jobs"] = jobs
    if settings.jobs_autostart:
        jobs.start()
        atexit.register(jobs.stop)
    return app


def init_schema(engine: Engine) -> None:
    """Create or upgrade the service's tables (gunicorn's master does it before the workers start)."""
    AbStore(engine).init_schema()
