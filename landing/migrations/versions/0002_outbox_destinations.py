"""The outbox carries rows for more than one receiver: events for metrics_service, new assignments
for ab_service. Rows queued before are events.

Revision ID: l0002
Revises: l0001
"""
import sqlalchemy as sa
from alembic import op

revision = "l0002"
down_revision = "l0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("destination", sa.String(16), nullable=False, server_default="events"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("destination")
