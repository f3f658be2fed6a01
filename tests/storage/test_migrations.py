"""Versioned schema: migrations build exactly the tables the code expects, on both backends."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from ab_service import store as ab_store
from core.db import make_engine
from core.migrate import upgrade
from landing import outbox as landing_outbox
from metrics_service import store as metrics_store

SERVICES = [ab_store, metrics_store, landing_outbox]


@pytest.mark.parametrize("module", SERVICES, ids=["ab_service", "metrics_service", "landing"])
def test_migrations_match_the_models(db_url, module):
    engine = make_engine(db_url)
    upgrade(engine, module.MIGRATIONS, module.VERSION_TABLE)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": module.VERSION_TABLE})
        diff = [d for d in compare_metadata(context, module.metadata)
                if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]
        revision = context.get_current_revision()
    assert diff == []
    assert revision is not None
    engine.dispose()


def test_upgrade_is_idempotent_and_services_share_a_database(db_url):
    engine = make_engine(db_url)
    for _ in range(2):
        for module in SERVICES:
            upgrade(engine, module.MIGRATIONS, module.VERSION_TABLE)
    tables = set(inspect(engine).get_table_names())
    assert {"experiments", "assignments", "flags", "audit_log", "events"} <= tables
    assert {"alembic_version_ab", "alembic_version_metrics", "alembic_version_landing"} <= tables
    engine.dispose()


def test_unversioned_outbox_is_rebuilt_with_its_queued_events(db_url):
    """The outbox each worker used to create itself (rows keyed by a reusable id): upgraded in place."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE outbox (id INTEGER PRIMARY KEY, event_id VARCHAR(36) NOT NULL UNIQUE, "
                          "payload TEXT NOT NULL, created_at BIGINT NOT NULL)"))
        conn.execute(text("INSERT INTO outbox (id, event_id, payload, created_at) VALUES "
                          "(1, 'e1', '{}', 10), (2, 'e2', '{}', 20)"))
    upgrade(engine, landing_outbox.MIGRATIONS, landing_outbox.VERSION_TABLE)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, payload, created_at, rejected FROM outbox ORDER BY event_id"))
        assert [tuple(r) for r in rows] == [("e1", "{}", 10, None), ("e2", "{}", 20, None)]
    assert "outbox_unversioned" not in inspect(engine).get_table_names()
    engine.dispose()
