"""Versioned schema: migrations build exactly the tables the code expects, on both backends."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from ab_service import store as ab_store
from core.db import make_engine, now_millis
from core.migrate import upgrade
from landing import store as landing_store
from metrics_service import store as metrics_store
from tests.helpers import ADMIN_TOKEN, flask_app, old_ab_installation

SERVICES = [ab_store, metrics_store, landing_store]


@pytest.mark.parametrize("module", SERVICES, ids=["ab_service", "metrics_service", "landing"])
def test_migrations_match_the_models(db_url, module):
    engine = make_engine(db_url)
    upgrade(engine, module.MIGRATIONS, module.VERSION_TABLE)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": module.VERSION_TABLE})
        diff = [d for d in compare_metadata(context, module.metadata)
                if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]
        revision = context.get_current_revision()
    assert diff == []
    assert revision is not None
    engine.dispose()


def test_upgrade_is_idempotent_and_services_share_a_database(db_url):
    engine = make_engine(db_url)
    for _ in range(2):
        for module in SERVICES:
            upgrade(engine, module.MIGRATIONS, module.VERSION_TABLE)
    tables = set(inspect(engine).get_table_names())
    assert {"experiments", "assignments", "flags", "audit_log", "events"} <= tables
    assert {"alembic_version_ab", "alembic_version_metrics", "alembic_version_landing"} <= tables
    engine.dispose()


def test_unversioned_outbox_is_rebuilt_with_its_queued_events(db_url):
    """The outbox each worker used to create itself (rows keyed by a reusable id): upgraded in place."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE outbox (id INTEGER PRIMARY KEY, event_id VARCHAR(36) NOT NULL UNIQUE, "
                          "payload TEXT NOT NULL, created_at BIGINT NOT NULL)"))
        conn.execute(text("INSERT INTO outbox (id, event_id, payload, created_at) VALUES "
                          "(1, 'e1', '{}', 10), (2, 'e2', '{}', 20)"))
    upgrade(engine, landing_store.MIGRATIONS, landing_store.VERSION_TABLE)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, payload, created_at, rejected FROM outbox ORDER BY event_id"))
        assert [tuple(r) for r in rows] == [("e1", "{}", 10, None), ("e2", "{}", 20, None)]
    assert "outbox_unversioned" not in inspect(engine).get_table_names()
    engine.dispose()


def test_an_old_installation_upgrades_to_the_content_model(db_url):
    old_ab_installation(db_url)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for _ in range(2):  # starting again changes nothing more
        with flask_app("ab_service", DATABASE_URL=db_url, ADMIN_TOKEN=ADMIN_TOKEN) as app:
            client = app.test_client()
            flags = {f["key"]: f for f in client.get("/flags").get_json()["flags"]}
            experiments = {e["key"]: e for e in client.get("/experiments").get_json()["experiments"]}
            audit = client.get("/audit", headers=admin).get_json()["entries"]
            assigned = client.get("/assign?visitor_id=v1").get_json()["variant"]
        assert flags["hero_headline"]["value"] == flags["hero_headline"]["off_value"] == "Ship experiments, not guesses"
        assert flags["hero_headline"]["description"] == "Headline of the hero section"
        assert flags["cta_text"]["value"] == "Join now"
        assert flags["layout"]["allowed"] == ["centered", "split"] and flags["layout"]["value"] == "centered"
        assert flags["hero_lede"]["value"].startswith("Landing Lab splits your traffic")
        assert experiments["landing"]["variants"] == [
            {"name": "A", "weight": 0.3, "overrides": {}},
            {"name": "B", "weight": 0.7, "overrides": {
                "layout": "split", "hero_headline": "Know what works before you scale it",
                "hero_lede": "Run A/B tests on your landing page, self-hosted, with results you can trust."}}]
        assert [v["overrides"] for v in experiments["pricing"]["variants"]] == [{}, {}]
        assert (experiments["pricing"]["namespace"], experiments["pricing"]["condition"]) == (None, None)
        assert assigned == "B"
        assert sorted((e["actor"], e["entity"], e["key"]) for e in audit) == [
            ("migration", "experiment", "landing"), ("migration", "flag", "hero_headline")]


def test_a_headline_an_admin_had_set_stays_on_both_variants(db_url):
    old_ab_installation(db_url, headline="Our own headline")
    with flask_app("ab_service", DATABASE_URL=db_url) as app:
        client = app.test_client()
        flags = {f["key"]: f for f in client.get("/flags").get_json()["flags"]}
        landing = client.get("/experiments/landing").get_json()
    assert flags["hero_headline"]["value"] == "Our own headline"
    assert flags["hero_headline"]["description"] == "Headline of the hero section"
    assert landing["variants"][1]["overrides"] == {
        "layout": "split", "hero_lede": "Run A/B tests on your landing page, self-hosted, with results you can trust."}


def test_events_queued_before_the_fold_queue_kept_times_stay_queued_from_the_upgrade_on(db_url):
    engine = make_engine(db_url)
    upgrade(engine, metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE, revision="m0009")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO fold_queue (event_id) VALUES ('e1'), ('e2')"))
    before = now_millis()
    upgrade(engine, metrics_store.MIGRATIONS, metrics_store.VERSION_TABLE)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO fold_queue (event_id) VALUES ('e3')"))  # ingest names no time
        rows = [tuple(r) for r in conn.execute(text("SELECT seq, event_id, queued_at FROM fold_queue ORDER BY seq"))]
    assert [event_id for _, event_id, _ in rows] == ["e1", "e2", "e3"] and rows[0][0] < rows[1][0] < rows[2][0]
    assert all(before - 5000 <= queued_at <= now_millis() + 5000 for _, _, queued_at in rows)
    engine.dispose()
