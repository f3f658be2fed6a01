"""The landing page against a real ab_service and metrics_service: the built-in `landing` experiment,
flags, cookies, events, previews, and what happens when ab_service is away."""
import re
import uuid

import pytest
import requests
from sqlalchemy import select

from core.bucketing import assign_variant
from core.events import experiment_event_id
from core.experiments import LANDING_EXPERIMENT
from core.flags import in_rollout
from landing.sticky import COOKIE, StickyCookie
from metrics_service.store import EventFilter, events
from tests.helpers import landing_variant_shown, make_landing, refresh, shown_variants


def stored_events(landing_app, metrics_server):
    landing_app.extensions["outbox"].flush()
    return metrics_server.app.extensions["metrics_store"]


def stored_rows(metrics_server):
    with metrics_server.app.extensions["metrics_store"].engine.connect() as conn:
        return conn.execute(select(events)).mappings().all()


def cookie_header(response, name: str) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]
    return header


def first_view(client, visitor: str):
    """The page as `visitor` sees it with no remembered assignments."""
    client.set_cookie("ll_vid", visitor)
    client.delete_cookie(COOKIE)
    return client.get("/")


def test_first_visit_sets_year_long_visitor_and_assignment_cookies(landing_app, landing_client):
    response = landing_client.get("/")
    assert response.status_code == 200
    for name in ("ll_vid", COOKIE):
        cookie = cookie_header(response, name)
        assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Max-Age=31536000" in cookie
        assert "Secure" not in cookie  # a plain-HTTP request
    visitor = re.search(r"ll_vid=([0-9a-f-]+)", cookie_header(response, "ll_vid")).group(1)
    assert uuid.UUID(visitor)
    assert shown_variants(landing_app, response) == {"landing": landing_variant_shown(response.get_data(as_text=True))}


def test_cookies_are_secure_on_a_secure_request(landing_client):
    response = landing_client.get("/", base_url="https://lab.example")
    assert "Secure" in cookie_header(response, "ll_vid") and "Secure" in cookie_header(response, COOKIE)


def test_page_renders_the_assigned_variant_on_the_server(landing_app, landing_client):
    seen = set()
    for i in range(30):
        visitor = str(uuid.UUID(int=i + 1))
        response = first_view(landing_client, visitor)
        html = response.get_data(as_text=True)
        variant = landing_variant_shown(html)
        assert variant == assign_variant(visitor, ["A", "B"], [0.5, 0.5], 1.0, "landing")
        assert shown_variants(landing_app, response) == {"landing": variant}
        assert 'id="cta"' in html and 'id="signup-form"' in html
        assert "data-variant" not in html and not re.search(r"variant [AB]\b", html)  # no variant name shown
        texts = {t.strip() for t in re.findall(r">([^<]*)<", html)}
        assert not texts & {"A", "B"}, "a variant name as a text the visitor sees"
        seen.add(variant)
    assert seen == {"A", "B"}


def test_variant_is_sticky_across_reloads(landing_client):
    variant = landing_variant_shown(landing_client.get("/").get_data(as_text=True))
    for _ in range(5):
        assert landing_variant_shown(landing_client.get("/").get_data(as_text=True)) == variant


def test_page_view_click_and_signup_reach_metrics(landing_app, landing_client, metrics_server):
    variant = landing_variant_shown(landing_client.get("/").get_data(as_text=True))
    click_id = str(uuid.uuid4())
    answer = landing_client.post("/track", json={"event_type": "cta_click", "event_id": click_id})
    assert answer.status_code == 202 and answer.get_json()["event_id"] == click_id
    signup = landing_client.post("/signup", json={"email": "ada@example.com"})
    assert signup.status_code == 202
    assert "Thanks" in signup.get_json()["message"]
    assert stored_events(landing_app, metrics_server).count_events() == 3
    rows = stored_rows(metrics_server)
    assert {r["event_type"] for r in rows} == {"page_view", "cta_click", "form_submit"}
    assert {(r["experiment"], r["variant"]) for r in rows} == {("landing", variant)}
    assert experiment_event_id(click_id, "landing") in {r["event_id"] for r in rows}
    assert all("ada" not in (r["properties"] or "") for r in rows)


def test_a_retried_click_is_stored_once(landing_app, landing_client, metrics_server):
    landing_client.get("/")
    click_id = str(uuid.uuid4())
    for _ in range(3):
        assert landing_client.post("/track", json={"event_type": "cta_click", "event_id": click_id}).status_code == 202
    store = stored_events(landing_app, metrics_server)
    assert store.count_events(EventFilter(event_type="cta_click")) == 1


def test_tracked_clicks_of_registered_types_arrive_and_the_others_are_kept_aside(landing_app, landing_client,
                                                                                metrics_server):
    """A data-track click of a type metrics_service knows is stored with its value; one it does not know
    is refused there and kept in the landing outbox (with the reason), not lost."""
    metrics_server.app.extensions["catalogue_store"].add_event_type("pricing_click", "")
    landing_client.get("/")
    assert landing_client.post("/track", json={"event_type": "pricing_click", "value": 49.5}).status_code == 202
    assert landing_client.post("/track", json={"event_type": "unheard_of"}).status_code == 202
    outbox = landing_app.extensions["outbox"]
    store = stored_events(landing_app, metrics_server)
    assert store.count_events(EventFilter(event_type="pricing_click")) == 1
    assert [r["value"] for r in stored_rows(metrics_server) if r["event_type"] == "pricing_click"] == [49.5]
    assert outbox.rejected() == 1 and outbox.pending() == 0


def test_signup_without_javascript_redirects_with_feedback(landing_client):
    landing_client.get("/")
    response = landing_client.post("/signup", data={"email": "ada@example.com"})
    assert response.status_code == 303
    page = landing_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thanks! You&#39;re on the list." in page or "Thanks! You're on the list." in page


@pytest.mark.parametrize("email", ["", "nope", "a@b", "x" * 300 + "@example.com"])
def test_bad_email_is_rejected_and_nothing_recorded(landing_app, landing_client, metrics_server, email):
    variant = landing_variant_shown(landing_client.get("/").get_data(as_text=True))
    response = landing_client.post("/signup", json={"email": email})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "email"
    form = landing_client.post("/signup", data={"email": email})
    assert form.status_code == 400 and "feedback error" in form.get_data(as_text=True)
    assert landing_variant_shown(form.get_data(as_text=True)) == variant  # the page again, as the visitor saw it
    assert stored_events(landing_app, metrics_server).count_events(EventFilter(event_type="form_submit")) == 0


def test_a_refused_form_keeps_the_typed_address_escaped_and_marks_the_field(landing_client):
    landing_client.get("/")
    typed = 'nope"><script>alert(1)</script>'
    page = landing_client.post("/signup", data={"email": typed}).get_data(as_text=True)
    field = re.search(r"<input id=\"email\"[^>]*>", page).group(0)
    assert 'aria-invalid="true"' in field
    assert 'value="nope&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in field
    assert "<script>alert(1)" not in page
    assert page.count("<main") == 1
    fresh = landing_client.get("/").get_data(as_text=True)
    assert "aria-invalid" not in fresh and 'value="nope' not in fresh


def test_track_rejects_unknown_events_bad_ids_and_a_missing_cookie(landing_client):
    assert landing_client.post("/track", json={"event_type": "cta_click"}).status_code == 400
    landing_client.get("/")
    for server_recorded in ("page_view", "form_submit", "not a key", 12):
        answer = landing_client.post("/track", json={"event_type": server_recorded})
        assert answer.status_code == 400 and answer.get_json()["errors"][0]["field"] == "event_type"
    for bad_value in ("12", True, [1]):
        answer = landing_client.post("/track", json={"event_type": "cta_click", "value": bad_value})
        assert answer.status_code == 400 and answer.get_json()["errors"][0]["field"] == "value"
    assert landing_client.post("/track", data=b"{bad", content_type="application/json").status_code == 400
    for bad_id in ("not-a-uuid", 12, ["x"]):
        answer = landing_client.post("/track", json={"event_type": "cta_click", "event_id": bad_id})
        assert answer.status_code == 400 and answer.get_json()["errors"][0]["field"] == "event_id"


def test_toggles_change_the_page(landing_app, landing_client, ab_server, admin_headers):
    html = landing_client.get("/").get_data(as_text=True)
    assert 'id="promo"' in html and 'id="testimonials"' in html and "Get started" in html
    requests.post(
        f"{ab_server.url}/config",
        json={"show_promo_section": False, "show_testimonials": False, "enable_signup_form": False,
              "cta_text": "<b>Try</b> it"},
        headers=admin_headers,
        timeout=5,
    ).raise_for_status()
    assert "Get started" in landing_client.get("/").get_data(as_text=True)  # until the next refresh
    refresh(landing_app)
    html = landing_client.get("/").get_data(as_text=True)
    assert 'id="promo"' not in html and 'id="testimonials"' not in html and 'id="signup-form"' not in html
    assert "&lt;b&gt;Try&lt;/b&gt; it" in html and "<b>Try</b>" not in html
    closed = landing_client.post("/signup", json={"email": "ada@example.com"})
    assert closed.status_code == 400 and "closed" in closed.get_json()["message"]


def test_html_has_security_headers(landing_client):
    response = landing_client.get("/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


def test_a_landing_process_that_never_reached_ab_service_shows_the_built_in_experiment(
        tmp_path, metrics_server, closed_port_url):
    app = make_landing(tmp_path, closed_port_url, metrics_server.url)
    client = app.test_client()
    for i in range(40):
        visitor = str(uuid.UUID(int=1000 + i))
        response = first_view(client, visitor)
        assert response.status_code == 200
        assert landing_variant_shown(response.get_data(as_text=True)) == assign_variant(visitor, ["A", "B"],
                                                                                         seed="landing")


def test_a_restarted_process_shows_the_last_copy_while_ab_service_is_away(tmp_path, ab_server, metrics_server,
                                                                          admin_headers):
    """Definitions fetched once are kept in the landing database: a process started while ab_service is
    down renders new visitors with the last weights and flags, not the built-in ones."""
    requests.patch(f"{ab_server.url}/experiments/landing", headers=admin_headers, timeout=5,
                   json={"variants": [{"name": "A", "weight": 0.1}, {"name": "B", "weight": 0.9}]}).raise_for_status()
    requests.post(f"{ab_server.url}/config", json={"cta_text": "Try it today"}, headers=admin_headers,
                  timeout=5).raise_for_status()
    make_landing(tmp_path, ab_server.url, metrics_server.url)  # fetches and keeps them
    restarted = make_landing(tmp_path, "http://127.0.0.1:9", metrics_server.url)  # ab_service gone
    client = restarted.test_client()
    for i in range(40):
        visitor = str(uuid.UUID(int=9000 + i))
        response = first_view(client, visitor)
        expected = assign_variant(visitor, ["A", "B"], [0.1, 0.9], 1.0, "landing")
        assert shown_variants(restarted, response) == {"landing": expected}
        assert "Try it today" in response.get_data(as_text=True)


def test_metrics_down_keeps_events_until_delivered(tmp_path, ab_server, closed_port_url):
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


def test_force_variant_previews_it_and_marks_events_forced(landing_app, landing_client, metrics_server):
    own = shown_variants(landing_app, landing_client.get("/"))
    for spec, variant in (("A", "A"), ("B", "B"), ("landing:B", "B")):
        response = landing_client.get(f"/?force_variant={spec}")
        assert landing_variant_shown(response.get_data(as_text=True)) == variant
        assert f'data-forced-variant="landing:{variant}"' in response.get_data(as_text=True)
        assert not [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
        click = landing_client.post("/track", json={"event_type": "cta_click", "forced_variant": f"landing:{variant}"})
        assert click.status_code == 202
    unknown = landing_client.get("/?force_variant=Z")
    assert "data-forced-variant" not in unknown.get_data(as_text=True)
    assert shown_variants(landing_app, unknown) == own  # an unknown variant is an ordinary view
    store = stored_events(landing_app, metrics_server)
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.variant, events.c.excluded, events.c.event_type)).all()
    forced = sorted((v, t) for v, e, t in rows if e == "forced")
    assert forced == sorted([("A", "page_view"), ("B", "page_view"), ("B", "page_view"),
                             ("A", "cta_click"), ("B", "cta_click"), ("B", "cta_click")])
    assert sorted(v for v, e, _ in rows if e is None) == [own["landing"]] * 2  # the two ordinary views
    assert metrics_server.app.test_client().get("/stats").get_json()["total_events"] == 2


def test_flag_changes_reach_the_rendered_page(landing_app, landing_client, ab_server, admin_headers):
    requests.post(f"{ab_server.url}/config", json={"hero_headline": "<i>Bold</i> claims", "accent_color": "#ff0066",
                                                   "promo_discount_percent": 35}, headers=admin_headers,
                  timeout=5).raise_for_status()
    refresh(landing_app)
    landing_client.set_cookie("ll_vid", str(uuid.UUID(int=1)))  # variant A: shows the flag's headline
    html = landing_client.get("/").get_data(as_text=True)
    assert "<h1>&lt;i&gt;Bold&lt;/i&gt; claims</h1>" in html
    assert "35% off" in html
    stylesheet = re.search(r'<link rel="stylesheet" href="(/theme\.css\?[^"]+)"', html).group(1)
    assert stylesheet == "/theme.css?accent=%23ff0066"
    css = landing_client.get(stylesheet)
    assert css.mimetype == "text/css" and css.get_data(as_text=True) == ":root { --accent: #ff0066; }\n"


@pytest.mark.parametrize("accent", ["red", "#ff00", "#ff0066;}body{display:none", "javascript:alert(1)"])
def test_the_stylesheet_takes_only_a_colour(landing_client, accent):
    response = landing_client.get("/theme.css", query_string={"accent": accent})
    assert response.status_code == 400 and response.get_json()["errors"][0]["field"] == "accent"
    default = landing_client.get("/theme.css")
    assert default.status_code == 200 and "--accent: #3b5bdb;" in default.get_data(as_text=True)


def test_flag_rollout_is_resolved_per_visitor(landing_app, landing_client, ab_server, admin_headers):
    requests.patch(f"{ab_server.url}/flags/show_testimonials", json={"rollout": 0.5}, headers=admin_headers,
                   timeout=5).raise_for_status()
    refresh(landing_app)
    shown = set()
    for i in range(40):
        visitor = str(uuid.UUID(int=5000 + i))
        landing_client.set_cookie("ll_vid", visitor)
        html = landing_client.get("/").get_data(as_text=True)
        assert ('id="testimonials"' in html) == in_rollout("show_testimonials", visitor, 0.5)
        shown.add('id="testimonials"' in html)
    assert shown == {True, False}


def test_a_weight_change_moves_no_returning_visitor(landing_app, ab_server, admin_headers):
    visitors = []
    for i in range(60):
        client = landing_app.test_client()
        client.set_cookie("ll_vid", str(uuid.UUID(int=7000 + i)))
        visitors.append((client, landing_variant_shown(client.get("/").get_data(as_text=True))))
    assert {v for _, v in visitors} == {"A", "B"}
    variants = [{**variant, "weight": weight} for variant, weight in
                zip(LANDING_EXPERIMENT.as_dict()["variants"], (0.05, 0.95), strict=True)]
    requests.patch(f"{ab_server.url}/experiments/landing", headers=admin_headers, timeout=5,
                   json={"variants": variants}).raise_for_status()
    refresh(landing_app)
    for client, variant in visitors:
        response = client.get("/")
        assert landing_variant_shown(response.get_data(as_text=True)) == variant
        assert shown_variants(landing_app, response) == {"landing": variant}


def test_a_tampered_assignment_cookie_is_ignored(landing_app, landing_client):
    """A visitor who edits their cookie to pick a variant gets the one the hash gives them instead."""
    visitor = next(str(uuid.UUID(int=i)) for i in range(1, 100)
                   if assign_variant(str(uuid.UUID(int=i)), ["A", "B"], seed="landing") == "A")
    landing_client.set_cookie("ll_vid", visitor)
    genuine = cookie_header(landing_client.get("/"), COOKIE).split(";")[0].split("=", 1)[1]
    signature = genuine.rpartition(".")[2]
    forged_payload = landing_app.extensions["sticky"].dumps({"landing": "B"}).rpartition(".")[0]
    for forged in (forged_payload + "." + signature, genuine[:-3] + "abc", "garbage",
                   StickyCookie("a guessed secret").dumps({"landing": "B"})):
        landing_client.set_cookie(COOKIE, forged)
        response = landing_client.get("/")
        assert landing_variant_shown(response.get_data(as_text=True)) == "A"
        assert shown_variants(landing_app, response) == {"landing": "A"}  # and a genuine cookie again



def test_the_exposure_carries_the_visitors_context_and_nothing_else_does(landing_app, landing_client,
                                                                         metrics_server):
    from metrics_service.store import event_context

    landing_client.get("/?utm_source=Google&utm_campaign=Spring", headers={
        "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
                      "Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "Referer": "https://news.example.org/story?reader=42"})
    assert landing_client.post("/track", json={"event_type": "cta_click"}).status_code == 202
    store = stored_events(landing_app, metrics_server)
    with store.engine.connect() as conn:
        contexts = conn.execute(select(event_context)).mappings().all()
    [view] = [row for row in stored_rows(metrics_server) if row["event_type"] == "page_view"]
    [context] = contexts  # the click carries none
    assert context["event_id"] == view["event_id"]
    assert {k: v for k, v in context.items() if v and k != "event_id"} == {
        "device": "mobile", "browser": "Mobile Safari", "os": "iOS", "utm_source": "google",
        "utm_campaign": "spring", "referrer_host": "news.example.org", "path": "/"}
