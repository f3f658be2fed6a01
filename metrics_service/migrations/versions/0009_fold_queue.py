"""The fold queue: the counted events stored by ingest and not yet folded into the aggregates. Ingest
writes the raw event and its entry here in one transaction; a background folder (and any readout,
before it reads) folds queued events into the aggregates and deletes their entries in another. Every
event stored before this upgrade is folded already, so the queue starts empty.

Revision ID: m0009
Revises: m0008
"""
import sqlalchemy as sa
from alembic import op

revision = "m0009"
down_revision = "m0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fold_queue",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fold_queue")
