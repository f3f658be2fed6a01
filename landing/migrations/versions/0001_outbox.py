"""The outbox keyed by event_id, with a place for events metrics_service rejected.

Before versioning, each worker created `outbox` itself, keyed by a row id that SQLite reuses once the
table empties; such a table is rebuilt here with its queued events kept.

Revision ID: l0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "l0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    unversioned = sa.inspect(op.get_bind()).has_table("outbox")
    if unversioned:
        op.execute("CREATE TABLE outbox_unversioned AS SELECT event_id, payload, created_at FROM outbox")
        op.drop_table("outbox")
    op.create_table(
        "outbox",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    if unversioned:
        op.execute("INSERT INTO outbox (event_id, payload, created_at) "
                   "SELECT event_id, payload, created_at FROM outbox_unversioned")
        op.drop_table("outbox_unversioned")


def downgrade() -> None:
    op.drop_table("outbox")
