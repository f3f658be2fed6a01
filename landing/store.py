"""The landing service's own tables: the outbox, and the last flags and experiments ab_service served."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, Text

from core.migrate import upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_landing"

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    # an event's event_id; for an assignment, a uuid5 of (experiment, visitor), so it is queued once
    Column("event_id", String(36), primary_key=True),
    Column("destination", String(16), nullable=False, server_default="events"),  # "events" | "assignments"
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False, index=True),
    Column("rejected", Text, nullable=True),  # the receiver's reason; such rows are kept, not re-sent
)

definitions = Table(
    "definitions",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("body", Text, nullable=False),  # JSON: {"flags": [...], "experiments": [...]}
    Column("fetched_at", BigInteger, nullable=False),
)


def init_schema(engine: Engine) -> None:
    """Create or upgrade the tables; the workers starting together take turns (see core.migrate)."""
    upgrade(engine, MIGRATIONS, VERSION_TABLE)
