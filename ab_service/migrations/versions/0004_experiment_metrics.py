"""The metrics an experiment is judged on: one primary metric, secondary metrics and guardrails
(keys of metrics_service's /metrics). Existing experiments have none (readouts default to form_submit).

Revision ID: ab0004
Revises: ab0003
"""
import sqlalchemy as sa
from alembic import op

revision = "ab0004"
down_revision = "ab0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("primary_metric", sa.String(64), nullable=True))
    op.add_column("experiments", sa.Column("secondary_metrics", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("experiments", sa.Column("guardrail_metrics", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    for name in ("guardrail_metrics", "secondary_metrics", "primary_metric"):
        op.drop_column("experiments", name)
