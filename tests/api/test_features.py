"""GET /api/features/<client key>: the official GrowthBook SDK, given ab_service's payload, decides for
every visitor what core.evaluation decides, and /assign names the same variants; on both backends."""
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from core.evaluation import evaluate
from tests.helpers import ADMIN_TOKEN, flask_app, mixed_visitors, sdk_decisions, sqlite_only

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SIMPLE = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]

# Beside the built-in `landing` (layout, headline, lede; 50/50, everyone):
EXPERIMENTS = [
    {"key": "cta_copy", "status": "running", "coverage": 0.8, "seed": "cta-seed",
     "namespace": {"name": "hero", "start": 0.0, "end": 0.5},
     "variants": [{"name": "A", "weight": 0.2, "overrides": {}},
                  {"name": "B", "weight": 0.3, "overrides": {"cta_text": "Start free"}},
                  {"name": "C", "weight": 0.5, "overrides": {"cta_text": "Try it", "show_testimonials": False}}]},
    {"key": "cta_short", "status": "running",
     "namespace": {"name": "hero", "start": 0.5, "end": 1.0},
     "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Go"}}]},
    {"key": "paid_promo", "status": "running",
     "condition": {"utm_source": "google", "device": {"$in": ["mobile", "tablet"]}},
     "variants": [{"name": "off", "weight": 0.5, "overrides": {"promo_discount_percent": 10}},
                  {"name": "on", "weight": 0.5, "overrides": {"promo_discount_percent": 30,
                                                              "show_promo_section": True}}]},
    {"key": "returning_color", "status": "running", "coverage": 0.5, "seed": "rc",
     "condition": {"$or": [{"returning": True}, {"referrer_host": {"$regex": "news"}}]},
     "variants": [{"name": "A", "weight": 0.5, "overrides": {"accent_color": "#222222"}},
                  {"name": "B", "weight": 0.5, "overrides": {"accent_color": "#aa3300"}}]},
    {"key": "old_test", "status": "stopped",
     "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Old"}}]},
    {"key": "draft_test", "status": "draft",
     "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Draft"}}]},
]


@pytest.fixture
def client(db_url):
    with flask_app("ab_service", DATABASE_URL=db_url, ADMIN_TOKEN=ADMIN_TOKEN,
                   GROWTHBOOK_CLIENT_KEY="sdk-test") as app:
        client = app.test_client()
        for experiment in EXPERIMENTS:
            assert client.post("/experiments", json=experiment, headers=ADMIN).status_code == 201
        assert client.patch("/flags/show_promo_section", json={"rollout": 0.3, "off_value": False},
                            headers=ADMIN).status_code == 200
        yield client


def assign_query(key: str, attributes: dict) -> str:
    params = {"experiment": key, "visitor_id": attributes["id"],
              **{k: str(v).lower() if isinstance(v, bool) else v for k, v in attributes.items() if k != "id"}}
    return "/assign?" + urlencode(params)


@sqlite_only  # the hash decides; stickiness is tested on both backends
def test_the_sdk_decides_as_the_page_and_assign(client):
    payload = client.get("/api/features/sdk-test").get_json()
    assert payload["status"] == 200
    flags = client.get("/flags").get_json()["flags"]
    experiments = client.get("/experiments").get_json()["experiments"]
    running = [e["key"] for e in experiments if e["status"] == "running"]
    assert running == ["cta_copy", "cta_short", "landing", "paid_promo", "returning_color"]
    seen = {key: set() for key in payload["features"]}
    exposed = {key: 0 for key in running}
    for attributes in mixed_visitors(1000):
        values, sdk_variants = sdk_decisions(payload["features"], attributes)
        ours = evaluate(flags, experiments, attributes)
        assert values == ours.values, attributes
        assert sdk_variants == ours.exposures, attributes
        for key in running:
            answer = client.get(assign_query(key, attributes)).get_json()
            assert answer["in_experiment"] == (key in sdk_variants), (key, attributes)
            if answer["in_experiment"]:
                assert answer["variant"] == sdk_variants[key]
                exposed[key] += 1
        for key, value in values.items():
            seen[key].add(str(value))
    # the sample exercises every experiment, the rollout and the defaults
    assert seen["cta_text"] == {"Get started", "Start free", "Try it", "Go"}
    assert seen["layout"] == {"centered", "split"}
    assert seen["hero_headline"] == {"Ship experiments, not guesses", "Know what works before you scale it"}
    assert seen["promo_discount_percent"] == {"10", "20", "30"}
    assert seen["accent_color"] == {"#3b5bdb", "#222222", "#aa3300"}
    assert seen["show_promo_section"] == {"True", "False"}
    assert seen["show_testimonials"] == {"True", "False"}
    assert all(count > 20 for count in exposed.values()), exposed


def test_the_payload_is_public_behind_its_client_key(client):
    assert client.get("/api/features/sdk-test").status_code == 200
    for key in ("sdk-landing-lab", "sdk-tes", "nope"):
        response = client.get(f"/api/features/{key}")
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_date_updated_is_the_newest_change(client):
    from sqlalchemy import update

    from ab_service.store import experiments, flags

    with client.application.extensions["ab_store"].engine.begin() as conn:
        conn.execute(update(flags).values(updated_at=1_500_000_000_000))
        conn.execute(update(experiments).values(updated_at=1_600_000_000_000))
    assert client.get("/api/features/sdk-test").get_json()["dateUpdated"] == "2020-09-13T12:26:40.000Z"
    client.patch("/flags/cta_text", json={"value": "Begin"}, headers=ADMIN)
    after = client.get("/api/features/sdk-test").get_json()
    assert after["features"]["cta_text"]["defaultValue"] == "Begin"
    updated = datetime.fromisoformat(after["dateUpdated"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - updated).total_seconds()) < 60
    client.patch("/experiments/cta_short", json={"status": "stopped"}, headers=ADMIN)
    rules = client.get("/api/features/sdk-test").get_json()["features"]["cta_text"]["rules"]
    assert [rule["key"] for rule in rules] == ["cta_copy"]


def test_the_default_client_key(ab_client):
    payload = ab_client.get("/api/features/sdk-landing-lab").get_json()
    assert set(payload["features"]) == {f["key"] for f in ab_client.get("/flags").get_json()["flags"]}
    [rule] = payload["features"]["layout"]["rules"]
    assert rule["variations"] == ["centered", "split"] and rule["meta"] == [{"key": "A", "name": "A"},
                                                                            {"key": "B", "name": "B"}]
