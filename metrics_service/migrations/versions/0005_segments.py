"""Segments: the context of each counted exposure (device, browser, os, utm_*, referrer host, path,
country), the values each dimension keeps, each visitor's context and the visitors per segment.
Events stored before carry no context: the new tables start empty.

Revision ID: m0005
Revises: m0004
"""
import sqlalchemy as sa
from alembic import op

revision = "m0005"
down_revision = "m0004"
branch_labels = None
depends_on = None

DIMENSIONS = ("device", "browser", "os", "utm_source", "utm_medium", "utm_campaign", "referrer_host", "path",
              "country")


def _dimensions():
    return [sa.Column(name, sa.String(64), nullable=True) for name in DIMENSIONS]


def _keyed(*columns):
    return [sa.Column("experiment", sa.String(64), primary_key=True),
            sa.Column("variant", sa.String(64), primary_key=True), *columns]


def upgrade() -> None:
    op.create_table("event_context", sa.Column("event_id", sa.String(36), primary_key=True), *_dimensions())
    op.create_table("segment_values", sa.Column("dimension", sa.String(32), primary_key=True),
                    sa.Column("value", sa.String(64), primary_key=True))
    op.create_table("visitor_context", *_keyed(
        sa.Column("visitor_id", sa.String(128), primary_key=True),
        sa.Column("exposed_ts", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False), *_dimensions()), sqlite_with_rowid=False)
    op.create_table("agg_segments", *_keyed(
        sa.Column("dimension", sa.String(32), primary_key=True), sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("cohort_hour", sa.BigInteger, primary_key=True), sa.Column("mask", sa.Integer, primary_key=True),
        sa.Column("visitors", sa.BigInteger, nullable=False)))


def downgrade() -> None:
    for name in ("agg_segments", "visitor_context", "segment_values", "event_context"):
        op.drop_table(name)
