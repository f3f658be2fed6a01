"""Versioned schema changes with Alembic: each service upgrades its own tables to head at start-up."""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, text


def _config(script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    return config


@contextmanager
def _exclusive(engine: Engine, name: str):
    """One migrator at a time: a PostgreSQL advisory lock, or a file lock beside the SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": name})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": name})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, script_location: Path, version_table: str, revision: str = "head") -> None:
    """Bring the database to `revision`; an existing database upgrades in place."""
    config = _config(script_location, version_table)
    with _exclusive(engine, version_table), engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


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
