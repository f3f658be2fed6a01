"""ab_service: sticky variant assignment and feature-toggle configuration."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from ab_service.store import AbStore
from core.db import make_engine, ping
from core.openapi import openapi_blueprint
from core.settings import Settings
from core.web import create_base_app, health_blueprint


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    settings = Settings.from_env("ab_service")
    app = create_base_app(__name__, settings, test_config)
    engine = make_engine(app.config["DATABASE_URL"])
    store = AbStore(engine)
    store.init_schema()
    app.extensions["ab_store"] = store

    from ab_service import assign, audit, config, experiments, flags
    from ab_service import openapi as ab_service_openapi

    app.register_blueprint(openapi_blueprint(ab_service_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine)))
    app.register_blueprint(assign.bp)
    app.register_blueprint(config.bp)
    app.register_blueprint(flags.bp)
    app.register_blueprint(experiments.bp)
    app.register_blueprint(audit.bp)
    return app
