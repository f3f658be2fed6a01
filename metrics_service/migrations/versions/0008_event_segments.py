"""Events per segment: each visitor's counted events per event type and hour, and from them (with
visitor_context) the events and the active visitors per segment, filled from the events still stored
(events that retention deleted before this upgrade are in no segment). The tables per segment are keyed
segment first (experiment, dimension, value, then variant...), agg_segments too (copied into that
order): a query of one segment names the experiment, the dimension and the value, not the variant.

Revision ID: m0008
Revises: m0007
"""
import sqlalchemy as sa
from alembic import op

revision = "m0008"
down_revision = "m0007"
branch_labels = None
depends_on = None


def _keyed(*columns):
    return [sa.Column("experiment", sa.String(64), primary_key=True),
            sa.Column("variant", sa.String(64), primary_key=True), *columns]


def _segment(*columns, key: tuple[str, ...]):
    """A table per segment, keyed segment first (experiment, dimension, value, then variant...): a
    query of one segment names the experiment, the dimension and the value, not the variant."""
    return [*_keyed(sa.Column("dimension", sa.String(32), primary_key=True),
                    sa.Column("value", sa.String(64), primary_key=True),
                    sa.Column("event_type", sa.String(32), primary_key=True), *columns),
            sa.PrimaryKeyConstraint("experiment", "dimension", "value", "variant", "event_type", *key)]


def upgrade() -> None:
    from metrics_service.aggregates import counts
    from metrics_service.store import aggregates, events, metric_tables

    op.create_table("visitor_events", *_keyed(
        sa.Column("visitor_id", sa.String(128), primary_key=True),
        sa.Column("event_type", sa.String(32), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True), sa.Column("events", sa.BigInteger, nullable=False)),
        sqlite_with_rowid=False)
    op.create_table("agg_event_segments", *_segment(
        sa.Column("hour", sa.BigInteger, primary_key=True), sa.Column("events", sa.BigInteger, nullable=False),
        key=("hour",)))
    op.create_table("agg_active_segments", *_segment(
        sa.Column("kind", sa.String(1), primary_key=True), sa.Column("period", sa.BigInteger, primary_key=True),
        sa.Column("visitors", sa.BigInteger, nullable=False), key=("kind", "period")))
    _rekey_segments(("experiment", "dimension", "value", "variant", "cohort_hour", "mask"))
    aggregates.rebuild_event_segments(op.get_bind(), events,
                                      counts(events, sa.select(metric_tables.event_types.c.key)))


def _rekey_segments(key: tuple[str, ...]) -> None:
    """agg_segments copied into a table of the same columns keyed in the order `key`."""
    columns = ("experiment", "variant", "dimension", "value", "cohort_hour", "mask", "visitors")
    op.create_table("agg_segments_rekeyed", *_keyed(
        sa.Column("dimension", sa.String(32), primary_key=True), sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("cohort_hour", sa.BigInteger, primary_key=True), sa.Column("mask", sa.Integer, primary_key=True),
        sa.Column("visitors", sa.BigInteger, nullable=False)), sa.PrimaryKeyConstraint(*key))
    op.execute(f"INSERT INTO agg_segments_rekeyed ({', '.join(columns)}) SELECT {', '.join(columns)} FROM agg_segments")
    op.drop_table("agg_segments")
    op.rename_table("agg_segments_rekeyed", "agg_segments")


def downgrade() -> None:
    _rekey_segments(("experiment", "variant", "dimension", "value", "cohort_hour", "mask"))
    for name in ("agg_active_segments", "agg_event_segments", "visitor_events"):
        op.drop_table(name)
