"""Folding that cannot fail for good: when each queued event was queued (fold_queue.queued_at, the
database's clock in ms, filled by a default so ingest writes nothing more), for the age of the oldest
in /health; and fold_failed, the events whose fold failed on its own (a bug, or data the fold cannot
take): taken out of the queue so that the rest is folded, kept in events, counted by the next rebuild.

Revision ID: m0010
Revises: m0009
"""
import sqlalchemy as sa
from alembic import op

from core.db import now_millis_sql

revision = "m0010"
down_revision = "m0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    queued_at = sa.Column("queued_at", sa.BigInteger, nullable=False,
                          server_default=sa.text(now_millis_sql(op.get_bind().dialect.name)))
    # SQLite adds no column with a default that is not a constant: the (short) queue's table is made again,
    # now with AUTOINCREMENT: without it SQLite hands out the numbers of entries already folded again once
    # the queue empties, and a readout settling "up to the last entry" would chase entries queued after it
    with op.batch_alter_table("fold_queue", recreate="always" if op.get_bind().dialect.name == "sqlite"
                              else "auto", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(queued_at)
    op.create_table(
        "fold_failed",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("error", sa.String(200), nullable=False),  # the error's type and place, never its message
        sa.Column("failed_at", sa.BigInteger, nullable=False),  # ms since the epoch
    )


def downgrade() -> None:
    op.drop_table("fold_failed")
    with op.batch_alter_table("fold_queue") as batch:
        batch.drop_column("queued_at")
