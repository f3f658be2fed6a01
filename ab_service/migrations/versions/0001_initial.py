"""Initial schema: experiments, assignments, flags, audit log.

Revision ID: ab0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "ab0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("coverage", sa.Float, nullable=False),
        sa.Column("seed", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("visitor_id", sa.String(128), primary_key=True),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "flags",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("off_value", sa.Text, nullable=False),
        sa.Column("rollout", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "flags", "assignments", "experiments"):
        op.drop_table(table)
