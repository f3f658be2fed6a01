"""The page's content as flags: allowed values of a flag; namespace and condition of an experiment; an
existing installation's content upgraded to the new model.

Before, the template chose the headline, lede and layout by variant name and `hero_headline` was empty
("replaces the variant's headline when set"). Now the template shows flag values, and the built-in
`landing` experiment's variant B overrides layout, headline and lede. Existing rows are upgraded so the
page looks as it did: an empty `hero_headline` gets its default; `landing`'s variants, when none has
overrides yet, get the built-in ones (without the headline when an admin had set one, which then shows
in both variants, as before). Each change is written to the audit log as the actor "migration". The new
flags (`hero_lede`, `layout`) are inserted by the start-up seed, like every default flag.

Revision ID: ab0002
Revises: ab0001
"""
import json
import time

import sqlalchemy as sa
from alembic import op

revision = "ab0002"
down_revision = "ab0001"
branch_labels = None
depends_on = None

OLD_HEADLINE_DESCRIPTION = "Replaces the variant's headline when set"

flags = sa.table("flags", sa.column("key", sa.String), sa.column("value", sa.Text), sa.column("off_value", sa.Text),
                 sa.column("description", sa.Text), sa.column("updated_at", sa.BigInteger))
experiments = sa.table("experiments", sa.column("key", sa.String), sa.column("variants", sa.JSON),
                       sa.column("updated_at", sa.BigInteger))
audit_log = sa.table("audit_log", sa.column("at", sa.BigInteger), sa.column("actor", sa.String),
                     sa.column("entity", sa.String), sa.column("key", sa.String), sa.column("action", sa.String),
                     sa.column("old", sa.Text), sa.column("new", sa.Text))


def upgrade() -> None:
    op.add_column("flags", sa.Column("allowed", sa.Text, nullable=True))
    op.add_column("experiments", sa.Column("namespace", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("experiments", sa.Column("condition", sa.JSON(none_as_null=True), nullable=True))
    conn = op.get_bind()
    now = int(time.time() * 1000)
    headline_was_set = _upgrade_headline(conn, now)
    _upgrade_landing(conn, now, headline_was_set)


def _audit(conn, now: int, entity: str, key: str, old, new) -> None:
    conn.execute(sa.insert(audit_log).values(at=now, actor="migration", entity=entity, key=key, action="update",
                                             old=json.dumps(old), new=json.dumps(new)))


def _upgrade_headline(conn, now: int) -> bool:
    """The default headline where none was set; whether an admin had set one."""
    from core.flags import default_flag

    row = conn.execute(sa.select(flags).where(flags.c.key == "hero_headline")).mappings().first()
    if row is None:
        return False
    old = {"value": json.loads(row["value"]), "off_value": json.loads(row["off_value"]),
           "description": row["description"]}
    default = default_flag("hero_headline")
    new = {"value": old["value"] or default["value"], "off_value": old["off_value"] or default["off_value"],
           "description": default["description"] if old["description"] == OLD_HEADLINE_DESCRIPTION
           else old["description"]}
    if new != old:
        conn.execute(sa.update(flags).where(flags.c.key == "hero_headline").values(
            value=json.dumps(new["value"]), off_value=json.dumps(new["off_value"]), description=new["description"],
            updated_at=now))
        _audit(conn, now, "flag", "hero_headline", old, new)
    return bool(old["value"])


def _upgrade_landing(conn, now: int, headline_was_set: bool) -> None:
    """The built-in variants' overrides, for a `landing` experiment whose variants have none."""
    from core.experiments import LANDING_EXPERIMENT

    row = conn.execute(sa.select(experiments.c.variants).where(experiments.c.key == LANDING_EXPERIMENT.key)).first()
    if row is None or any(variant.get("overrides") for variant in row.variants):
        return
    built_in = {variant.name: dict(variant.overrides) for variant in LANDING_EXPERIMENT.variants}
    if headline_was_set:
        for overrides in built_in.values():
            overrides.pop("hero_headline", None)
    variants = [{**variant, "overrides": built_in.get(variant["name"], {})} for variant in row.variants]
    conn.execute(sa.update(experiments).where(experiments.c.key == LANDING_EXPERIMENT.key).values(
        variants=variants, updated_at=now))
    _audit(conn, now, "experiment", LANDING_EXPERIMENT.key, {"variants": row.variants}, {"variants": variants})


def downgrade() -> None:
    op.drop_column("experiments", "condition")
    op.drop_column("experiments", "namespace")
    op.drop_column("flags", "allowed")
