"""Aggregates kept at ingest, backfilled from the existing raw events.

Revision ID: m0002
Revises: m0001
"""
import sqlalchemy as sa
from alembic import op

revision = "m0002"
down_revision = "m0001"
branch_labels = None
depends_on = None


def _key():
    return [sa.Column("experiment", sa.String(64), primary_key=True),
            sa.Column("variant", sa.String(64), primary_key=True)]


def upgrade() -> None:
    op.create_table("agg_events", *_key(), sa.Column("event_type", sa.String(32), primary_key=True),
                    sa.Column("hour", sa.BigInteger, primary_key=True),
                    sa.Column("events", sa.BigInteger, nullable=False))
    op.create_table("visitor_state", *_key(), sa.Column("visitor_id", sa.String(128), primary_key=True),
                    sa.Column("first_ts", sa.BigInteger, nullable=False), sa.Column("mask", sa.Integer, nullable=False))
    op.create_table("agg_cohorts", *_key(), sa.Column("cohort_hour", sa.BigInteger, primary_key=True),
                    sa.Column("mask", sa.Integer, primary_key=True),
                    sa.Column("visitors", sa.BigInteger, nullable=False))
    op.create_table("visitor_periods", *_key(), sa.Column("visitor_id", sa.String(128), primary_key=True),
                    sa.Column("event_type", sa.String(32), primary_key=True),
                    sa.Column("kind", sa.String(1), primary_key=True),
                    sa.Column("period", sa.BigInteger, primary_key=True))
    op.create_table("agg_active", *_key(), sa.Column("event_type", sa.String(32), primary_key=True),
                    sa.Column("kind", sa.String(1), primary_key=True),
                    sa.Column("period", sa.BigInteger, primary_key=True),
                    sa.Column("visitors", sa.BigInteger, nullable=False))
    # Existing databases upgrade in place: fill the new tables from the events already stored.
    from metrics_service.store import aggregates, events

    aggregates.rebuild(op.get_bind(), events)


def downgrade() -> None:
    for table in ("agg_active", "visitor_periods", "agg_cohorts", "visitor_state", "agg_events"):
        op.drop_table(table)
