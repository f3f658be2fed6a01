"""Versioned schema changes with Alembic: each service upgrades its own tables to head at start-up."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, Engine

from core.db import exclusive, make_engine


def _config(script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    return config


def upgrade(engine: Engine, script_location: Path, version_table: str, revision: str = "head",
            seed: Callable[[Connection], None] | None = None) -> None:
    """Bring the database to `revision`; an existing database upgrades in place. `seed` then inserts
    the rows every installation starts with, in the same transaction: the processes starting together
    take turns, and none sees the new schema without them."""
    config = _config(script_location, version_table)
    with exclusive(engine, "migrate"), engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        if seed is not None:
            seed(conn)


def migrate_database(database_url: str, init_schema: Callable[[Engine], None]) -> None:
    """Run a service's init_schema on an engine of its own, then close that engine's connections: gunicorn's
    master calls this once before it forks the workers (gunicorn.conf.py), which must not share them."""
    engine = make_engine(database_url)
    try:
        init_schema(engine)
    finally:
        engine.dispose()


def run_env(target_metadata) -> None:
    """The body of every service's migrations/env.py (online mode only: the app passes its connection)."""
    config = context.config
    context.configure(
        connection=config.attributes["connection"],
        target_metadata=target_metadata,
        version_table=config.attributes["version_table"],
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
