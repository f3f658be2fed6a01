"""Every experiment an admin defines reaches the page: several at once, their overrides, their events,
their assignments, previews; and no page view waits on ab_service.

ab_service here is a stand-in serving exactly the interface the landing service uses (GET /flags,
GET /experiments, POST /assignments), so each test sets the definitions it needs and sees every
request the landing service makes."""
from __future__ import annotations

import copy
import threading
import time
import uuid

import pytest
import requests
from flask import Flask, request

from core.evaluation import evaluate
from core.events import experiment_event_id
from core.experiments import LANDING_EXPERIMENT
from core.flags import DEFAULT_FLAGS
from landing.context import visitor_attributes
from landing.outbox import ASSIGNMENTS
from landing.sticky import COOKIE
from tests.helpers import INGEST_KEY, LiveServer, make_landing, refresh, shown_variants

HERO = {"key": "hero_copy", "description": "", "coverage": 1.0, "seed": None, "status": "running",
        "namespace": None, "condition": None,
        "variants": [{"name": "A", "weight": 1 / 3, "overrides": {}},
                     {"name": "B", "weight": 1 / 3, "overrides": {"cta_text": "Start free", "layout": "split"}},
                     {"name": "C", "weight": 1 / 3, "overrides": {"cta_text": "Try it now"}}]}
PROMO = {"key": "promo", "description": "", "coverage": 1.0, "seed": None, "status": "running",
         "namespace": None, "condition": None,
         "variants": [{"name": "off", "weight": 0.5, "overrides": {"show_promo_section": False}},
                      {"name": "deep", "weight": 0.5, "overrides": {"promo_discount_percent": 40}}]}
PAID = {"key": "paid_only", "description": "", "coverage": 1.0, "seed": None, "status": "running",
        "namespace": None, "condition": {"utm_source": "google"},
        "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                     {"name": "B", "weight": 0.5, "overrides": {"accent_color": "#aa3300"}}]}
CTA_TEXT = {"A": "Get started", "B": "Start free", "C": "Try it now"}
LANDING = {**LANDING_EXPERIMENT.as_dict(), "namespace": None, "condition": None}


class FakeAbService:
    """Serves `flags` and `experiments` as ab_service does, stores POSTed assignments insert-if-new
    (with the landing service's ingest key only), and counts every request it gets."""

    def __init__(self):
        self.flags = [dict(flag) for flag in DEFAULT_FLAGS]
        self.experiments = [copy.deepcopy(LANDING)]
        self.assignments: dict[tuple[str, str], str] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        app = Flask("ab_service_stand_in")

        @app.before_request
        def count():
            with self.lock:
                self.requests.append(f"{request.method} {request.path}")

        @app.get("/flags")
        def flags():
            return {"flags": self.flags}

        @app.get("/experiments")
        def experiments():
            return {"experiments": self.experiments}

        @app.post("/assignments")
        def assignments():
            if request.headers.get("Authorization") != f"Bearer {INGEST_KEY}":
                return {"error": "unauthorized", "message": "ingest key required"}, 401
            stored = 0
            with self.lock:
                for row in request.get_json():
                    key = (row["experiment"], row["visitor_id"])
                    if key not in self.assignments:
                        self.assignments[key] = row["variant"]
                        stored += 1
            return {"stored": stored}

        self.server = LiveServer(app)
        self.url = self.server.url

    def calls(self) -> list[str]:
        with self.lock:
            return list(self.requests)

    def running(self, *experiments) -> None:
        self.experiments = [copy.deepcopy(LANDING), *map(copy.deepcopy, experiments)]


@pytest.fixture
def ab():
    fake = FakeAbService()
    yield fake
    fake.server.stop()


@pytest.fixture
def app(tmp_path, ab, metrics_server):
    return make_landing(tmp_path, ab.url, metrics_server.url)


def visitor(client, number: int) -> str:
    visitor_id = str(uuid.UUID(int=number))
    client.set_cookie("ll_vid", visitor_id)
    return visitor_id


def visitors_seen(app, count: int, query: str = ""):
    """(client, visitor id, variants remembered, html) for `count` new visitors' first page view."""
    seen = []
    for number in range(1, count + 1):
        client = app.test_client()
        visitor_id = visitor(client, number)
        response = client.get("/" + query)
        seen.append((client, visitor_id, shown_variants(app, response), response.get_data(as_text=True)))
    return seen


def test_a_visitor_sees_the_overrides_of_every_experiment_they_are_in(app, ab):
    ab.running(HERO, PROMO)
    refresh(app)
    combinations = set()
    for _, visitor_id, variants, html in visitors_seen(app, 90):
        assert set(variants) == {"landing", "hero_copy", "promo"}
        hero, promo = variants["hero_copy"], variants["promo"]
        assert f'<a id="cta" class="cta" href="#signup">{CTA_TEXT[hero]}</a>' in html
        # hero_copy overrides the layout too: B is split, A and C show the flag's value (centered)
        assert ('class="layout-split"' in html) == (hero == "B")
        assert ('id="promo"' in html) == (promo == "deep")
        assert ("40% off" in html) == (promo == "deep")
        combinations.add((hero, promo))
        expected = evaluate(app.extensions["definitions"].current().flags, ab.experiments, {"id": visitor_id})
        assert variants == expected.exposures
    assert combinations == {(h, p) for h in "ABC" for p in ("off", "deep")}


def test_one_experiment_decides_a_flag_two_could_set(app, ab):
    """Only traffic that cannot overlap may share a flag; should two still claim it, the first in key
    order decides, as in the features payload."""
    first = {**HERO, "key": "a_first", "variants": [{"name": "X", "weight": 1.0, "overrides": {"cta_text": "First"}}]}
    second = {**first, "key": "b_second",
              "variants": [{"name": "Y", "weight": 1.0, "overrides": {"cta_text": "Second"}}]}
    ab.running(second, first)
    refresh(app)
    client = app.test_client()
    visitor(client, 1)
    assert ">First</a>" in client.get("/").get_data(as_text=True)


def test_a_condition_admits_only_matching_visitors(app, ab):
    ab.running(PAID)
    refresh(app)
    searchers = visitors_seen(app, 40, "?utm_source=Google")
    for client, _, variants, html in searchers:
        assert variants["paid_only"] in {"A", "B"}
        assert ("accent=%23aa3300" in html) == (variants["paid_only"] == "B")
        # remembered: the next view, without the campaign parameter, shows the same
        again = client.get("/")
        assert shown_variants(app, again)["paid_only"] == variants["paid_only"]
        assert ("accent=%23aa3300" in again.get_data(as_text=True)) == (variants["paid_only"] == "B")
    assert {v["paid_only"] for _, _, v, _ in searchers} == {"A", "B"}
    for _, _, variants, html in visitors_seen(app, 40, "?utm_source=newsletter"):
        assert "paid_only" not in variants and "accent=%23aa3300" not in html


def test_attributes_follow_the_request(app, ab):
    """device and returning come from the request: an experiment for returning mobile visitors takes a
    visitor on their second view from a phone only."""
    phones = {**PAID, "key": "phones", "condition": {"device": "mobile", "returning": True}}
    ab.running(phones)
    refresh(app)
    iphone = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"}
    client = app.test_client()
    first = client.get("/", headers=iphone)
    assert "phones" not in shown_variants(app, first)  # not yet returning
    assert "phones" in shown_variants(app, client.get("/", headers=iphone))
    desktop = app.test_client()
    desktop.get("/")
    assert "phones" not in shown_variants(app, desktop.get("/"))
    attributes = visitor_attributes("v", True, iphone["User-Agent"], {}, None, "/")
    assert (attributes["device"], attributes["returning"]) == ("mobile", True)


def test_events_are_recorded_per_experiment(app, ab, metrics_server):
    ab.running(HERO, PROMO)
    refresh(app)
    client = app.test_client()
    visitor(client, 3)
    variants = shown_variants(app, client.get("/"))
    click = str(uuid.uuid4())
    assert client.post("/track", json={"event_type": "cta_click", "event_id": click}).status_code == 202
    assert client.post("/signup", json={"email": "ada@example.com", "event_id": str(uuid.uuid4())}).status_code == 202
    app.extensions["outbox"].flush()
    metrics = metrics_server.app.test_client()
    for experiment, variant in variants.items():
        stats = metrics.get("/stats", query_string={"experiment": experiment}).get_json()
        assert {row["variant"]: row["visitors"] for row in stats["matrix"] if row["event_type"] == "page_view"} == \
            {variant: 1}
        assert {row["event_type"]: row["events"] for row in stats["matrix"]} == \
            {"page_view": 1, "cta_click": 1, "form_submit": 1}
        results = metrics.get(f"/experiments/{experiment}/results", query_string={"metric": "cta_click"}).get_json()
        arm = next(v for v in results["variants"] if v["variant"] == variant)
        assert (arm["visitors"], arm["conversions"]) == (1, 1)
    stored = metrics_server.app.extensions["metrics_store"]
    with stored.engine.connect() as conn:
        ids = {row[0] for row in conn.exec_driver_sql("SELECT event_id FROM events WHERE event_type = 'cta_click'")}
    assert ids == {experiment_event_id(click, experiment) for experiment in variants}
    # Without an experiment filter the visitor counts once, each action once per experiment.
    overall = metrics.get("/stats").get_json()
    assert (overall["unique_visitors"], overall["total_events"]) == (1, 3 * len(variants))


def test_conversions_count_for_the_experiments_the_visitor_was_shown(app, ab, metrics_server):
    """An experiment started after the visitor's last page view gets no conversion from them; a stopped
    one neither; the experiments they were shown do."""
    ab.running(HERO)
    refresh(app)
    client = app.test_client()
    visitor(client, 5)
    shown = shown_variants(app, client.get("/"))
    ab.running({**HERO, "status": "stopped"}, PROMO)
    refresh(app)
    assert client.post("/track", json={"event_type": "cta_click"}).status_code == 202
    app.extensions["outbox"].flush()
    with metrics_server.app.extensions["metrics_store"].engine.connect() as conn:
        clicks = conn.exec_driver_sql("SELECT experiment, variant FROM events WHERE event_type = 'cta_click'").all()
    assert sorted(clicks) == [("landing", shown["landing"])]


def test_visitors_in_no_experiment_are_recorded_under_site(app, ab, metrics_server):
    ab.experiments = [{**copy.deepcopy(LANDING), "status": "stopped"}]
    refresh(app)
    client = app.test_client()
    visitor(client, 8)
    response = client.get("/")
    assert shown_variants(app, response) == {}
    assert 'class="layout-centered"' in response.get_data(as_text=True)  # a stopped experiment shows the defaults
    assert client.post("/track", json={"event_type": "cta_click"}).status_code == 202
    app.extensions["outbox"].flush()
    with metrics_server.app.extensions["metrics_store"].engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT experiment, variant, event_type, excluded FROM events").all()
    assert sorted(rows) == [("site", "all", "cta_click", None), ("site", "all", "page_view", None)]


def test_new_assignments_reach_ab_service_once(app, ab):
    ab.running(HERO, PROMO)
    refresh(app)
    seen = visitors_seen(app, 20)
    for client, *_ in seen:
        client.get("/")  # returning: nothing new to store
    outbox = app.extensions["outbox"]
    assert outbox.pending(ASSIGNMENTS) == 60
    assert outbox.flush(ASSIGNMENTS) == 60
    assert ab.assignments == {(experiment, visitor_id): variant for _, visitor_id, variants, _ in seen
                              for experiment, variant in variants.items()}
    assert outbox.pending(ASSIGNMENTS) == 0 and outbox.pending() == 120  # the events wait for metrics_service


def test_assignments_wait_out_an_ab_service_outage(app, ab):
    ab.running(HERO)
    refresh(app)
    visitors_seen(app, 5)
    outbox = app.extensions["outbox"]
    ab.server.stop()
    with pytest.raises(requests.ConnectionError):
        outbox.flush_once(ASSIGNMENTS)
    assert outbox.pending(ASSIGNMENTS) == 10


def test_a_wrong_ingest_key_keeps_assignments_queued(tmp_path, ab, metrics_server):
    app = make_landing(tmp_path, ab.url, metrics_server.url, INGEST_KEY="not-the-key")
    app.test_client().get("/")
    outbox = app.extensions["outbox"]
    with pytest.raises(requests.HTTPError, match="401"):
        outbox.flush_once(ASSIGNMENTS)
    assert (outbox.pending(ASSIGNMENTS), ab.assignments) == (1, {})


def test_no_page_view_or_event_calls_ab_service(app, ab):
    ab.running(HERO, PROMO)
    refresh(app)
    before = ab.calls()
    client = app.test_client()
    for _ in range(5):
        html = client.get("/").get_data(as_text=True)
        client.get("/theme.css?accent=%23123456")
        client.post("/track", json={"event_type": "cta_click"})
        client.post("/signup", json={"email": "ada@example.com"})
        client.post("/signup", data={"email": "nope"})
        client.get("/?force_variant=hero_copy:C")
    assert "Try it now" in html or "Start free" in html or "Get started" in html
    assert ab.calls() == before


def test_a_saved_change_shows_within_two_seconds(tmp_path, ab, metrics_server):
    app = make_landing(tmp_path, ab.url, metrics_server.url, REFRESH_SECONDS="0.5")
    try:
        client = app.test_client()
        assert "Get started" in client.get("/").get_data(as_text=True)
        ab.flags = [{**flag, "value": "Book a demo"} if flag["key"] == "cta_text" else flag for flag in ab.flags]
        saved = time.monotonic()
        while "Book a demo" not in client.get("/").get_data(as_text=True):
            assert time.monotonic() - saved < 2.0, "the change did not show within 2 s"
            time.sleep(0.05)
    finally:
        app.extensions["definitions"].stop()


def test_unusable_definitions_keep_the_last_good_copy(app, ab):
    ab.running(HERO)
    refresh(app)
    client = app.test_client()
    visitor(client, 2)
    page = client.get("/").get_data(as_text=True)
    ab.experiments = [{"key": "broken", "status": "running"}]  # no variants
    assert not app.extensions["definitions"].refresh()
    ab.experiments = "nonsense"
    assert not app.extensions["definitions"].refresh()
    assert client.get("/").get_data(as_text=True) == page


def test_experiments_gone_from_ab_service_are_dropped_from_the_cookie(app, ab):
    ab.running(HERO, PROMO)
    refresh(app)
    client = app.test_client()
    visitor(client, 4)
    assert set(shown_variants(app, client.get("/"))) == {"landing", "hero_copy", "promo"}
    ab.running({**HERO, "status": "stopped"})
    refresh(app)
    kept = shown_variants(app, client.get("/"))
    assert set(kept) == {"landing", "hero_copy"}  # stopped: remembered, in case it runs again
    ab.running({**HERO, "status": "running"})
    refresh(app)
    assert shown_variants(app, client.get("/"))["hero_copy"] == kept["hero_copy"]


def test_previews_show_several_experiments_and_change_nothing(app, ab, metrics_server):
    draft = {**PAID, "key": "draft_copy", "status": "draft", "condition": None}
    ab.running(HERO, PROMO, draft)
    refresh(app)
    client = app.test_client()
    visitor(client, 6)
    own = client.get("/")
    assert client.get_cookie(COOKIE) is not None
    cookie_before = client.get_cookie(COOKIE).value
    outbox = app.extensions["outbox"]
    queued = outbox.pending(ASSIGNMENTS)
    preview = client.get("/?force_variant=hero_copy:B,promo:deep,draft_copy:B,nope:A,hero_copy")
    html = preview.get_data(as_text=True)
    assert 'data-forced-variant="draft_copy:B,hero_copy:B,promo:deep"' in html
    assert "Start free" in html and 'class="layout-split"' in html and "40% off" in html
    assert "accent=%23aa3300" in html  # a draft experiment can be previewed before it starts
    assert not [h for h in preview.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    assert client.get_cookie(COOKIE).value == cookie_before
    assert outbox.pending(ASSIGNMENTS) == queued
    click = client.post("/track", json={"event_type": "cta_click", "forced_variant": "hero_copy:B,promo:deep"})
    assert click.status_code == 202
    outbox.flush()
    with metrics_server.app.extensions["metrics_store"].engine.connect() as conn:
        forced = conn.exec_driver_sql("SELECT experiment, variant, event_type FROM events "
                                      "WHERE excluded = 'forced'").all()
    assert sorted(forced) == [("draft_copy", "B", "page_view"), ("hero_copy", "B", "cta_click"),
                              ("hero_copy", "B", "page_view"), ("promo", "deep", "cta_click"),
                              ("promo", "deep", "page_view")]
    assert shown_variants(app, own) == shown_variants(app, client.get("/"))
