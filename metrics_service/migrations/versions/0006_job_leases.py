"""Leases of background jobs (the daily event retention): which process runs a job, until when,
and when it is next due, so one worker of one instance runs it at a time.

Revision ID: m0006
Revises: m0005
"""
import sqlalchemy as sa
from alembic import op

revision = "m0006"
down_revision = "m0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=False),  # ms since the epoch; free after it
        sa.Column("next_run", sa.BigInteger, nullable=False),  # ms since the epoch; due from then on
    )


def downgrade() -> None:
    op.drop_table("job_leases")
