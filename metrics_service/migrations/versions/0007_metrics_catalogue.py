"""The metrics catalogue: registered event types, metric definitions, an event's numeric `value`, and
the aggregates that feed count and value metrics (per-visitor counts and value sums, and per metric
the sums and sums of squares over exposed visitors), filled from the events already stored; saved
plans and the looks of their group-sequential readouts.

Revision ID: m0007
Revises: m0006
"""
import sqlalchemy as sa
from alembic import op

revision = "m0007"
down_revision = "m0006"
branch_labels = None
depends_on = None

TABLES = ("sequential_looks", "experiment_plans", "agg_metric", "visitor_values", "metric_defs", "event_types")


def upgrade() -> None:
    from metrics_service.aggregates import counts
    from metrics_service.store import events, metric_tables

    op.add_column("events", sa.Column("value", sa.Float, nullable=True))
    bind = op.get_bind()
    for name in reversed(TABLES):
        metric_tables.metric_defs.metadata.tables[name].create(bind)
    metric_tables.rebuild(bind, events, counts(events))


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
    op.drop_column("events", "value")
