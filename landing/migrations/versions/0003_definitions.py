"""The last flags and experiments ab_service served, so a landing process started while ab_service is
down shows visitors what it showed them before.

Revision ID: l0003
Revises: l0002
"""
import sqlalchemy as sa
from alembic import op

revision = "l0003"
down_revision = "l0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("definitions")
