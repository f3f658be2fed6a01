"""metrics_service: validates and stores visitor events, serves aggregated stats."""
from __future__ import annotations

from typing import Any

import click
from flask import Flask
from sqlalchemy import Engine

from core.db import make_engine, ping
from core.openapi import openapi_blueprint
from core.ratelimit import RateLimits
from core.settings import Settings
from core.web import create_base_app, health_blueprint
from metrics_service.catalogue_store import CatalogueStore
from metrics_service.schemas import Folding
from metrics_service.store import MetricsStore


def create_app(settings: Settings | None = None) -> Flask:
    """The app, configured by `settings` (tests pass their own) or else by the process environment."""
    settings = settings or Settings.from_env("metrics_service")
    app = create_base_app(__name__, settings)
    # Per sender (the ingest key, or an admin token's name); bodies are limited by MAX_BODY_BYTES.
    # Counted per worker in memory unless RATE_LIMIT_STORAGE_URI names a shared storage: an abuse
    # guard far above what the landing service sends, kept off the ingest transaction's write lock.
    app.extensions["rate_limits"] = RateLimits({"ingest": settings.rate_limit_ingest},
                                               settings.rate_limit_storage_uri or "memory://")
    engine = make_engine(settings.database_url)
    store = MetricsStore(engine, segment_limit=settings.segment_values)
    store.init_schema()
    app.extensions["metrics_store"] = store.start_folding()  # the aggregates kept off the ingest request
    app.extensions["catalogue_store"] = CatalogueStore(engine, store.settle)
    if settings.event_retention_days and settings.retention_check_seconds > 0:
        from metrics_service.retention import RetentionThread

        app.extensions["retention"] = RetentionThread(store, settings.event_retention_days,
                                                      settings.retention_check_seconds).start()

    from metrics_service import catalogue, export, folding, ingest, reports, results
    from metrics_service import openapi as metrics_service_openapi

    app.register_blueprint(openapi_blueprint(metrics_service_openapi.spec))
    app.register_blueprint(health_blueprint(lambda: ping(engine), lambda: fold_health(store)))
    app.register_blueprint(ingest.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(results.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(catalogue.bp)
    app.register_blueprint(folding.bp)

    @app.cli.command("rebuild-aggregates")
    def rebuild_aggregates() -> None:
        """Make every aggregate again from the stored events, counting the queued ones and those whose
        fold failed. Run it with metrics_service stopped, as a migration does: events ingested during
        the rebuild could be counted twice."""
        store.stop_folding()
        store.rebuild_aggregates()
        click.echo("aggregates rebuilt from the stored events; the fold queue and fold_failed are empty")

    return app


def fold_health(store: MetricsStore) -> dict[str, Any]:
    """/health's report: the fold queue, and "degraded" (still 200) while an event is left out of the
    aggregates or the oldest queued one has waited over a minute (FoldBacklog.behind)."""
    backlog = store.fold_backlog()
    return {"status": "degraded" if backlog.behind else "ok",
            "folding": Folding.model_validate(backlog, from_attributes=True).model_dump()}


def init_schema(engine: Engine) -> None:
    """Create or upgrade the service's tables (gunicorn's master does it before the workers start)."""
    MetricsStore(engine).init_schema()
