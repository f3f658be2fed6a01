"""Settings come from one environment mapping; the apps read only that object."""
import pytest

from core.roles import Role
from core.settings import Settings
from tests.helpers import INGEST_HEADERS, INGEST_KEY, settings_for


def test_defaults_name_the_service_and_its_database():
    settings = Settings.from_env("metrics_service", environ={"DATA_DIR": "/srv/lab"})
    assert settings.port == 5001
    assert settings.database_url == "sqlite:////srv/lab/metrics_service.db"
    assert settings.tokens == () and settings.public_reads is False
    assert settings.outbox_autostart is True and settings.refresh_seconds == 1.0
    assert settings.ingest_key == "" and settings.rate_limit_ingest == "1200/minute"
    assert settings.event_retention_days == 0  # raw events are kept forever


@pytest.mark.parametrize(("value", "days"), [("", 0), ("0", 0), (" 90 ", 90)])
def test_event_retention_days(value, days):
    assert Settings.from_env("metrics_service", environ={"EVENT_RETENTION_DAYS": value}).event_retention_days == days


def test_values_are_parsed_from_the_environment():
    settings = Settings.from_env("landing", environ={
        "PORT": "9000", "AB_SERVICE_URL": "http://ab:5002/", "ADMIN_TOKENS": "alice:one, bob:two",
        "CORS_ORIGINS": "https://a.example, https://b.example", "OUTBOX_AUTOSTART": "off",
        "REFRESH_SECONDS": "0", "TRUSTED_PROXY_HOPS": "1", "OUTBOX_MAX_BACKOFF_SECONDS": "2.5",
        "INGEST_KEY": " key ", "RATE_LIMIT_INGEST": ""})
    assert settings.port == 9000
    assert settings.ab_service_url == "http://ab:5002"
    assert [(t.name, t.role, t.token) for t in settings.tokens] == [("alice", Role.ADMIN, "one"),
                                                                     ("bob", Role.ADMIN, "two")]
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.outbox_autostart is False and settings.refresh_seconds == 0
    assert settings.proxy_hops == 1 and settings.outbox_max_backoff == 2.5
    assert settings.ingest_key == "key" and settings.rate_limit_ingest == ""


def test_named_tokens_carry_their_role_and_admin_tokens_keep_meaning_admin():
    settings = Settings.from_env("ab_service", environ={
        "API_TOKENS": "ann:viewer:s1, bea:Analyst:s2,cy:editor:with:colon", "ADMIN_TOKENS": "dee:s4",
        "ADMIN_TOKEN": "s5", "PUBLIC_READS": "yes"})
    assert [(t.name, t.role, t.token) for t in settings.tokens] == [
        ("ann", Role.VIEWER, "s1"), ("bea", Role.ANALYST, "s2"), ("cy", Role.EDITOR, "with:colon"),
        ("dee", Role.ADMIN, "s4"), ("admin", Role.ADMIN, "s5")]
    assert settings.public_reads is True
    assert "s1" not in repr(settings)  # tokens stay out of logs and tracebacks


@pytest.mark.parametrize("environ", [{"ADMIN_TOKENS": "no-colon"}, {"OUTBOX_AUTOSTART": "maybe"}, {"PORT": "x"},
                                     {"API_TOKENS": "ann:secret"}, {"API_TOKENS": "ann:owner:secret"},
                                     {"API_TOKENS": "ann:viewer:same", "ADMIN_TOKEN": "same"},
                                     {"PUBLIC_READS": "sometimes"}, {"EVENT_RETENTION_DAYS": "-1"},
                                     {"EVENT_RETENTION_DAYS": "a week"}])
def test_malformed_values_are_refused_at_start(environ):
    with pytest.raises(ValueError):
        Settings.from_env("landing", environ=environ)


def test_a_test_environment_replaces_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_TOKEN", "from-the-process")
    assert settings_for("ab_service").tokens == ()
    assert [(t.name, t.role) for t in Settings.from_env("ab_service").tokens] == [("admin", Role.ADMIN)]


def test_the_app_reads_its_body_limit_from_the_settings(tmp_path):
    from metrics_service import create_app

    app = create_app(settings_for("metrics_service", DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}",
                                  MAX_BODY_BYTES="200", INGEST_KEY=INGEST_KEY))
    client = app.test_client()
    event = {"visitor_id": "v1", "variant": "A", "event_type": "page_view"}
    assert client.post("/events", json=event, headers=INGEST_HEADERS).status_code == 202
    assert client.post("/events", json={**event, "properties": {"pad": "x" * 300}},
                       headers=INGEST_HEADERS).status_code == 413
    app.extensions["metrics_store"].engine.dispose()
