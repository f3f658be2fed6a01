"""Schedules and alerts: an experiment's pending start and stop times (and when it last started), flag
value changes scheduled for later, webhooks, the alerts raised (one row per condition) and their
deliveries (the durable outbox the sender works through), and when each periodic job last ran.

Revision ID: ab0003
Revises: ab0002
"""
import sqlalchemy as sa
from alembic import op

revision = "ab0003"
down_revision = "ab0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("start_at", sa.BigInteger, nullable=True))
    op.add_column("experiments", sa.Column("stop_at", sa.BigInteger, nullable=True))
    op.add_column("experiments", sa.Column("started_at", sa.BigInteger, nullable=True))
    # a running experiment counts as started when it last changed (no_data waits NO_DATA_HOURS from then)
    op.execute("UPDATE experiments SET started_at = updated_at WHERE status = 'running'")
    op.create_table(
        "flag_schedules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, index=True),
        sa.Column("due_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("condition", sa.String(255), nullable=False, unique=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("webhook_id", sa.String(36), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_run", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("job_runs", "webhook_deliveries", "alerts", "webhooks", "flag_schedules"):
        op.drop_table(table)
    for column in ("started_at", "stop_at", "start_at"):
        op.drop_column("experiments", column)
