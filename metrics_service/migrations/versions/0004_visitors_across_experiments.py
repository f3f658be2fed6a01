"""Each visitor counted once across experiments: the per-visitor aggregates gain rows under
experiment "*" (per variant, and overall for states and cohorts), filled by rebuilding the
aggregates from the events already stored.

Revision ID: m0004
Revises: m0003
"""
from alembic import op

revision = "m0004"
down_revision = "m0003"
branch_labels = None
depends_on = None

TABLES = ("visitor_state", "agg_cohorts", "visitor_periods", "agg_active")


def upgrade() -> None:
    from metrics_service.store import aggregates, events

    aggregates.rebuild(op.get_bind(), events)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE experiment = '*'")
