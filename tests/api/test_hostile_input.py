"""Hostile input, table by table: every case gets a structured 4xx (never a 5xx) or is stored literally."""
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from metrics_service.store import events
from tests.helpers import make_landing, refresh, settings_for

GOOD = {"visitor_id": "v1", "variant": "A", "event_type": "page_view"}
SQL = "'; DROP TABLE events; --"
SCRIPT = "<script>alert('x')</script>"


def nested(depth):
    value = {}
    for _ in range(depth):
        value = {"k": value}
    return value


EVENT_CASES = [
    ("malformed json", b'{"visitor_id": "v1",', 400),
    ("not utf-8", b'{"visitor_id": "\xff\xfe"}', 400),
    ("json scalar", b"42", 400),
    ("null", b"null", 400),
    ("wrong type", json.dumps({**GOOD, "visitor_id": 5}).encode(), 400),
    ("boolean as string field", json.dumps({**GOOD, "variant": True}).encode(), 400),
    ("unknown event type", json.dumps({**GOOD, "event_type": "purchase"}).encode(), 400),
    ("huge string", json.dumps({**GOOD, "visitor_id": "x" * 100_000}).encode(), 400),
    ("deep nesting", json.dumps({**GOOD, "properties": nested(50)}).encode(), 400),
    ("very deep nesting", ("[" * 5000 + "]" * 5000).encode(), 400),
    ("far future", json.dumps({**GOOD, "timestamp": (datetime.now(UTC) + timedelta(days=400)).isoformat()}).encode(),
     400),
    ("far past", json.dumps({**GOOD, "timestamp": "1970-01-01T00:00:00Z"}).encode(), 400),
    ("bad uuid", json.dumps({**GOOD, "event_id": "1; DROP"}).encode(), 400),
    ("extra field", json.dumps({**GOOD, "admin": True}).encode(), 400),
    ("too many events", json.dumps([GOOD] * 1001).encode(), 400),
    ("huge body", json.dumps([{**GOOD, "properties": {"p": "x" * 1500}}] * 300).encode(), 413),
    ("nan", b'{"visitor_id": "v1", "variant": "A", "event_type": "page_view", "properties": {"x": NaN}}', 400),
]


@pytest.mark.parametrize("name,body,status", EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_hostile_event_bodies(metrics_client, metrics_app, name, body, status):
    response = metrics_client.post("/events", data=body, content_type="application/json")
    assert response.status_code == status
    payload = response.get_json()
    assert payload["error"] and payload["message"]
    assert metrics_app.extensions["metrics_store"].count_events() == 0


@pytest.mark.parametrize("payload", [SQL, SCRIPT, "Robert'); --", "\u0000null\u0000byte", "😀 emoji ✓"])
def test_metacharacters_are_stored_literally(metrics_client, metrics_app, payload):
    visitor = payload[:100] or "v"
    response = metrics_client.post("/events", json={**GOOD, "visitor_id": visitor,
                                                    "properties": {"note": payload}})
    if "\u0000" in payload:
        assert response.status_code == 400
        assert metrics_app.extensions["metrics_store"].count_events() == 0
        return
    assert response.status_code == 202
    with metrics_app.extensions["metrics_store"].engine.connect() as conn:
        row = conn.execute(select(events.c.visitor_id, events.c.properties)).one()
    assert row.visitor_id == visitor
    assert json.loads(row.properties) == {"note": payload}
    stats = metrics_client.get("/stats", query_string={"variant": SQL}).get_json()
    assert stats["total_events"] == 0


@pytest.mark.parametrize("query", [f"variant={SQL}", "experiment=%00", "since=2026-13-45", "event_type=<b>",
                                   "until=" + "9" * 5000, "interval=%ff"])
def test_hostile_query_strings(metrics_client, query):
    for path in ("/stats", "/stats/timeseries", "/stats/funnel", "/experiments/landing/results"):
        response = metrics_client.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, query)
        assert response.is_json


CONFIG_CASES = [
    ({"cta_text": 1}, "cta_text"),
    ({"cta_text": "x" * 10_000}, "cta_text"),
    ({"show_testimonials": "false"}, "show_testimonials"),
    ({"accent_color": "#fff; background: url(javascript:alert(1))"}, "accent_color"),
    ({"promo_discount_percent": "1e309"}, "promo_discount_percent"),
    ({SQL: True}, SQL),
]


@pytest.mark.parametrize("body,field", CONFIG_CASES)
def test_hostile_config_writes(ab_client, admin_headers, body, field):
    response = ab_client.post("/config", json=body, headers=admin_headers)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == field


@pytest.mark.parametrize("value", [SCRIPT, SQL, '"><img src=x onerror=alert(1)>'])
def test_script_payloads_are_escaped_on_the_landing_page(landing_app, landing_client, ab_server, admin_headers,
                                                         value):
    import requests

    requests.post(f"{ab_server.url}/config", json={"cta_text": value, "hero_headline": value},
                  headers=admin_headers, timeout=5).raise_for_status()
    refresh(landing_app)
    html = landing_client.get("/").get_data(as_text=True)
    assert value not in html
    assert value.replace("<", "&lt;").replace(">", "&gt;")[:10] in html or "&#39;" in html or "&#34;" in html


@pytest.mark.parametrize("path,body", [("/track", b"{oops"), ("/track", b"\xff"), ("/signup", b"[1,2]"),
                                       ("/signup", json.dumps({"email": ["a@b.co"]}).encode())])
def test_hostile_landing_bodies(landing_client, path, body):
    landing_client.get("/")
    response = landing_client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_bad_visitor_cookie_gets_a_fresh_id(landing_client):
    landing_client.set_cookie("ll_vid", SCRIPT)
    response = landing_client.get("/")
    assert response.status_code == 200
    new_id = response.headers["Set-Cookie"].split("ll_vid=")[1].split(";")[0]
    assert uuid.UUID(new_id)


def test_bots_are_stored_flagged_and_left_out_of_stats(landing_app, landing_client, metrics_server):
    googlebot = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    landing_client.get("/", headers=googlebot)
    landing_client.get("/", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"})
    landing_app.extensions["outbox"].flush()
    store = metrics_server.app.extensions["metrics_store"]
    with store.engine.connect() as conn:
        assert sorted(e or "" for e in conn.execute(select(events.c.excluded)).scalars()) == ["", "bot"]
    assert store.count_events() == 1


def test_public_event_endpoints_are_rate_limited(tmp_path, ab_server, metrics_server):
    app = make_landing(tmp_path, ab_server.url, metrics_server.url, RATE_LIMIT_VISITOR="3/minute",
                       RATE_LIMIT_IP="5/minute")
    first, second = app.test_client(), app.test_client()
    first.get("/")
    second.get("/")
    assert [first.post("/track", json={"event_type": "cta_click"}).status_code for _ in range(3)] == [202] * 3
    limited = first.post("/track", json={"event_type": "cta_click"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"] == "too_many_requests"
    # another visitor from the same address still has the address's remaining budget, then hits it
    assert second.post("/signup", json={"email": "a@example.com"}).status_code == 202
    assert second.post("/track", json={"event_type": "cta_click"}).status_code == 429


def test_cors_is_an_allowlist(db_url):
    from ab_service import create_app

    client = create_app(settings_for("ab_service", DATABASE_URL=db_url,
                                   CORS_ORIGINS="https://admin.example.com")).test_client()
    allowed = client.get("/config", headers={"Origin": "https://admin.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://admin.example.com"
    other = client.get("/config", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/config", headers={"Origin": "https://evil.example.com",
                                                   "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    closed = create_app(settings_for("ab_service", DATABASE_URL=db_url)).test_client()
    assert "Access-Control-Allow-Origin" not in closed.get("/config", headers={"Origin": "https://x.io"}).headers


def test_json_apis_send_nosniff(ab_client, metrics_client):
    for client, path in ((ab_client, "/config"), (metrics_client, "/stats")):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers
