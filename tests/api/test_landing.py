import re
import uuid

import pytest

from core.bucketing import assign_variant
from tests.helpers import make_landing


def variant_of(html: str) -> str:
    return re.search(r'<body data-variant="([AB])"', html).group(1)


def stored_events(landing_app, metrics_server):
    landing_app.extensions["outbox"].flush()
    return metrics_server.app.extensions["metrics_store"]


def test_first_visit_sets_a_year_long_visitor_cookie(landing_client):
    response = landing_client.get("/")
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert "ll_vid=" in cookie and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Max-Age=31536000" in cookie
    visitor = re.search(r"ll_vid=([0-9a-f-]+)", cookie).group(1)
    assert uuid.UUID(visitor)


def test_page_renders_the_assigned_variant_on_the_server(landing_client, ab_server):
    seen = set()
    for i in range(30):
        visitor = str(uuid.UUID(int=i + 1))
        landing_client.set_cookie("ll_vid", visitor)
        html = landing_client.get("/").get_data(as_text=True)
        variant = variant_of(html)
        assert variant == assign_variant(visitor, ["A", "B"], [0.5, 0.5], 1.0, "landing")
        headline = "Know what works" if variant == "B" else "Ship experiments, not guesses"
        assert headline in html
        assert 'id="cta"' in html and 'id="signup-form"' in html
        seen.add(variant)
    assert seen == {"A", "B"}


def test_variant_is_sticky_across_reloads(landing_client):
    first = landing_client.get("/")
    variant = variant_of(first.get_data(as_text=True))
    for _ in range(5):
        assert variant_of(landing_client.get("/").get_data(as_text=True)) == variant


def test_page_view_click_and_signup_reach_metrics(landing_app, landing_client, metrics_server):
    html = landing_client.get("/").get_data(as_text=True)
    variant = variant_of(html)
    click_id = str(uuid.uuid4())
    assert landing_client.post("/track", json={"event_type": "cta_click", "event_id": click_id}).status_code == 202
    signup = landing_client.post("/signup", json={"email": "ada@example.com"})
    assert signup.status_code == 202
    assert "Thanks" in signup.get_json()["message"]
    store = stored_events(landing_app, metrics_server)
    assert store.count_events() == 3
    from sqlalchemy import select

    from metrics_service.store import events

    with store.engine.connect() as conn:
        rows = conn.execute(select(events)).mappings().all()
    assert {r["event_type"] for r in rows} == {"page_view", "cta_click", "form_submit"}
    assert {r["variant"] for r in rows} == {variant}
    assert click_id in {r["event_id"] for r in rows}
    assert all("ada" not in (r["properties"] or "") for r in rows)


def test_signup_without_javascript_redirects_with_feedback(landing_client):
    landing_client.get("/")
    response = landing_client.post("/signup", data={"email": "ada@example.com"})
    assert response.status_code == 303
    page = landing_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thanks! You&#39;re on the list." in page or "Thanks! You're on the list." in page


@pytest.mark.parametrize("email", ["", "nope", "a@b", "x" * 300 + "@example.com"])
def test_bad_email_is_rejected_and_nothing_recorded(landing_app, landing_client, metrics_server, email):
    landing_client.get("/")
    response = landing_client.post("/signup", json={"email": email})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "email"
    form = landing_client.post("/signup", data={"email": email})
    assert form.status_code == 400 and "feedback error" in form.get_data(as_text=True)
    assert stored_events(landing_app, metrics_server).count_events(
        __import__("metrics_service.store", fromlist=["EventFilter"]).EventFilter(event_type="form_submit")
    ) == 0


def test_track_rejects_unknown_events_and_missing_cookie(landing_client):
    assert landing_client.post("/track", json={"event_type": "cta_click"}).status_code == 400
    landing_client.get("/")
    assert landing_client.post("/track", json={"event_type": "purchase"}).status_code == 400
    assert landing_client.post("/track", data=b"{bad", content_type="application/json").status_code == 400


def test_toggles_change_the_page(landing_client, ab_server, admin_headers):
    import requests

    html = landing_client.get("/").get_data(as_text=True)
    assert 'id="promo"' in html and 'id="testimonials"' in html and "Get started" in html
    requests.post(
        f"{ab_server.url}/config",
        json={"show_promo_section": False, "show_testimonials": False, "enable_signup_form": False,
              "cta_text": "<b>Try</b> it"},
        headers=admin_headers,
        timeout=5,
    ).raise_for_status()
    html = landing_client.get("/").get_data(as_text=True)
    assert 'id="promo"' not in html and 'id="testimonials"' not in html and 'id="signup-form"' not in html
    assert "&lt;b&gt;Try&lt;/b&gt; it" in html and "<b>Try</b>" not in html


def test_html_has_security_headers(landing_client):
    response = landing_client.get("/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


def test_ab_service_down_falls_back_to_the_shared_hash(tmp_path, metrics_server, closed_port_url):
    app = make_landing(tmp_path, closed_port_url, metrics_server.url)
    client = app.test_client()
    for i in range(40):
        visitor = str(uuid.UUID(int=1000 + i))
        client.set_cookie("ll_vid", visitor)
        response = client.get("/")
        assert response.status_code == 200
        assert variant_of(response.get_data(as_text=True)) == assign_variant(visitor, ["A", "B"], seed="landing")


def test_metrics_down_keeps_events_until_delivered(tmp_path, ab_server, closed_port_url):
    import requests

    app = make_landing(tmp_path, ab_server.url, closed_port_url)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/").status_code == 200
    outbox = app.extensions["outbox"]
    with pytest.raises(requests.RequestException):
        outbox.flush()
    assert outbox.pending() == 3


def test_health(landing_client):
    assert landing_client.get("/health").get_json() == {"status": "ok"}


def test_force_variant_renders_it_and_marks_events_forced(landing_app, landing_client, metrics_server):
    from sqlalchemy import select

    from metrics_service.store import events

    for variant in ("A", "B"):
        html = landing_client.get(f"/?force_variant={variant}").get_data(as_text=True)
        assert variant_of(html) == variant
        assert f'data-forced-variant="{variant}"' in html
        click = landing_client.post("/track", json={"event_type": "cta_click", "forced_variant": variant})
        assert click.status_code == 202
    unknown = landing_client.get("/?force_variant=Z").get_data(as_text=True)
    assert "data-forced-variant" not in unknown
    store = stored_events(landing_app, metrics_server)
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.variant, events.c.excluded)).all()
    assert sorted((v, e or "") for v, e in rows) == sorted(
        [("A", "forced")] * 2 + [("B", "forced")] * 2 + [(variant_of(unknown), "")])
    stats = metrics_server.app.test_client().get("/stats").get_json()
    assert stats["total_events"] == 1


def test_flag_changes_reach_the_rendered_page(landing_client, ab_server, admin_headers):
    import requests

    requests.post(f"{ab_server.url}/config", json={"hero_headline": "<i>Bold</i> claims", "accent_color": "#ff0066",
                                                   "promo_discount_percent": 35}, headers=admin_headers,
                  timeout=5).raise_for_status()
    html = landing_client.get("/").get_data(as_text=True)
    assert "&lt;i&gt;Bold&lt;/i&gt; claims" in html
    assert "35% off" in html
    css = landing_client.get("/theme.css")
    assert css.mimetype == "text/css" and "--accent: #ff0066" in css.get_data(as_text=True)


def test_flag_rollout_is_resolved_per_visitor(landing_client, ab_server, admin_headers):
    import requests

    from core.flags import in_rollout

    requests.patch(f"{ab_server.url}/flags/show_testimonials", json={"rollout": 0.5}, headers=admin_headers,
                   timeout=5).raise_for_status()
    shown = set()
    for i in range(40):
        visitor = str(uuid.UUID(int=5000 + i))
        landing_client.set_cookie("ll_vid", visitor)
        html = landing_client.get("/").get_data(as_text=True)
        assert ('id="testimonials"' in html) == in_rollout("show_testimonials", visitor, 0.5)
        shown.add('id="testimonials"' in html)
    assert shown == {True, False}


def test_fallback_uses_the_last_known_experiment_definition(tmp_path, ab_server, metrics_server, admin_headers):
    import requests

    requests.patch(f"{ab_server.url}/experiments/landing", headers=admin_headers, timeout=5,
                   json={"variants": [{"name": "A", "weight": 0.1}, {"name": "B", "weight": 0.9}]}).raise_for_status()
    app = make_landing(tmp_path, ab_server.url, metrics_server.url)
    client = app.test_client()
    client.get("/")  # learns the definition
    app.extensions["ab_client"].base_url = "http://127.0.0.1:9"  # ab_service goes away
    for i in range(40):
        visitor = str(uuid.UUID(int=9000 + i))
        client.set_cookie("ll_vid", visitor)
        expected = assign_variant(visitor, ["A", "B"], [0.1, 0.9], 1.0, "landing")
        assert variant_of(client.get("/").get_data(as_text=True)) == expected
