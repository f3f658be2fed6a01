"""Cheaper ingest: drop an index of the raw events that no query uses any more (stats read the
aggregates), and on SQLite store the per-visitor tables WITHOUT ROWID (their primary key is the
table: one b-tree to write per row instead of two).

Revision ID: m0003
Revises: m0002
"""
import sqlalchemy as sa
from alembic import op

revision = "m0003"
down_revision = "m0002"
branch_labels = None
depends_on = None


def _key():
    return [sa.Column("experiment", sa.String(64), primary_key=True),
            sa.Column("variant", sa.String(64), primary_key=True),
            sa.Column("visitor_id", sa.String(128), primary_key=True)]


TABLES = {
    "visitor_state": lambda: [*_key(), sa.Column("first_ts", sa.BigInteger, nullable=False),
                              sa.Column("mask", sa.Integer, nullable=False)],
    "visitor_periods": lambda: [*_key(), sa.Column("event_type", sa.String(32), primary_key=True),
                                sa.Column("kind", sa.String(1), primary_key=True),
                                sa.Column("period", sa.BigInteger, primary_key=True)],
}


def upgrade() -> None:
    op.drop_index("ix_events_experiment_type_variant", table_name="events")
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, columns in TABLES.items():
        made = op.create_table(f"{name}_new", *columns(), sqlite_with_rowid=False)
        names = ", ".join(made.c.keys())
        op.execute(f"INSERT INTO {name}_new ({names}) SELECT {names} FROM {name}")
        op.drop_table(name)
        op.rename_table(f"{name}_new", name)


def downgrade() -> None:
    # The SQLite tables stay WITHOUT ROWID: the earlier code reads and writes them the same way.
    op.create_index("ix_events_experiment_type_variant", "events", ["experiment", "event_type", "variant"])
