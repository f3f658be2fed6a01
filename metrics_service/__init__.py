"""metrics_service: validates and stores visitor events, serves aggregated stats."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from core.db import make_engine, ping
from core.openapi import openapi_blueprint
from core.settings import Settings
from core.web import create_base_app, health_blueprint
from metrics_service.store import MetricsStore


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    settings = Settings.from_env("metrics_service")
    app = create_base_app(__name__, settings, test_config)
    engine = make_engine(app.config["DATABASE_URL"])
    store = MetricsStore(engine)
    store.init_schema()
    app.extensions["metrics_store"] = store

    from metrics_service import ingest, reports, results
    from metrics_service import openapi as metrics_service_openapi

    app.register_blueprint(openapi_blueprint(metrics_service_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine)))
    app.register_blueprint(ingest.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(results.bp)
    return app
