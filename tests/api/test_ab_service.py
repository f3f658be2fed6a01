import threading

from core.bucketing import assign_variant
from core.flags import DEFAULT_FLAGS
from tests.helpers import settings_for


def test_health(ab_client):
    response = ab_client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_assign_uses_the_shared_hash(ab_client):
    for i in range(50):
        visitor = f"visitor-{i}"
        body = ab_client.get(f"/assign?visitor_id={visitor}").get_json()
        assert body["visitor_id"] == visitor
        assert body["experiment"] == "landing"
        assert body["in_experiment"] is True
        assert body["variant"] == assign_variant(visitor, ["A", "B"], [0.5, 0.5], 1.0, "landing")


def test_assign_is_sticky_even_when_weights_change(ab_app, ab_client):
    from sqlalchemy import update

    from ab_service.store import experiments

    first = {f"v{i}": ab_client.get(f"/assign?visitor_id=v{i}").get_json()["variant"] for i in range(200)}
    with ab_app.extensions["ab_store"].engine.begin() as conn:
        conn.execute(
            update(experiments)
            .where(experiments.c.key == "landing")
            .values(variants=[{"name": "A", "weight": 0.01}, {"name": "B", "weight": 0.99}])
        )
    again = {v: ab_client.get(f"/assign?visitor_id={v}").get_json()["variant"] for v in first}
    assert again == first
    assert "A" in first.values()
    # a brand-new visitor is bucketed by the new weights
    fresh = [ab_client.get(f"/assign?visitor_id=new{i}").get_json()["variant"] for i in range(100)]
    assert fresh.count("B") > 90


def test_concurrent_first_requests_agree(ab_app):
    results, errors = [], []

    def hit():
        client = ab_app.test_client()
        response = client.get("/assign?visitor_id=racer")
        (results if response.status_code == 200 else errors).append(response)

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.get_json()["variant"] for r in results}) == 1
    from sqlalchemy import func, select

    from ab_service.store import assignments

    with ab_app.extensions["ab_store"].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(assignments)).scalar_one() == 1


def test_assign_rejects_bad_input(ab_client):
    missing = ab_client.get("/assign")
    assert missing.status_code == 400
    assert missing.get_json()["errors"][0]["field"] == "visitor_id"
    assert ab_client.get("/assign?visitor_id=" + "x" * 500).status_code == 400
    unknown = ab_client.get("/assign?visitor_id=v&experiment=nope")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"] == "not_found"


def test_config_defaults(ab_client):
    config = ab_client.get("/config").get_json()
    assert {flag["key"] for flag in DEFAULT_FLAGS} <= set(config)
    assert config["cta_text"] == "Get started"
    assert config["show_promo_section"] is True


def test_config_write_needs_the_admin_token(ab_client, admin_headers):
    assert ab_client.post("/config", json={"cta_text": "Hi"}).status_code == 401
    wrong = ab_client.post("/config", json={"cta_text": "Hi"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"] == "unauthorized"
    assert ab_client.get("/config").get_json()["cta_text"] == "Get started"


def test_config_write_updates_values(ab_client, admin_headers):
    response = ab_client.post(
        "/config", json={"cta_text": "Join now", "show_promo_section": False}, headers=admin_headers
    )
    assert response.status_code == 200
    config = ab_client.get("/config").get_json()
    assert config["cta_text"] == "Join now"
    assert config["show_promo_section"] is False
    assert config["show_testimonials"] is True


def test_config_write_rejects_unknown_keys_and_wrong_types(ab_client, admin_headers):
    response = ab_client.post(
        "/config", json={"nope": 1, "show_promo_section": "yes", "cta_text": 3}, headers=admin_headers
    )
    assert response.status_code == 400
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"nope", "show_promo_section", "cta_text"}
    assert ab_client.get("/config").get_json()["show_promo_section"] is True


def test_config_write_rejects_non_json(ab_client, admin_headers):
    response = ab_client.post("/config", data=b"{not json", headers=admin_headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"
    assert ab_client.post("/config", json=[1], headers=admin_headers).status_code == 400


def test_admin_token_unset_refuses_all_writes(db_url):
    from ab_service import create_app

    client = create_app(settings_for("ab_service", DATABASE_URL=db_url)).test_client()
    assert client.post("/config", json={"cta_text": "x"}, headers={"Authorization": "Bearer "}).status_code == 401


def test_unknown_route_is_json_404(ab_client):
    response = ab_client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_assign_sees_a_change_made_straight_in_the_database_at_once(ab_app, ab_client):
    """/assign reads the experiment's row every time and parses each distinct row once (at most
    PARSED_EXPERIMENTS of them per process): a row changed by any means is a new parse."""
    from sqlalchemy import update

    from ab_service.store import PARSED_EXPERIMENTS, experiments

    store = ab_app.extensions["ab_store"]
    placed = ab_client.get("/assign?visitor_id=v1").get_json()["variant"]
    first, stored = store.experiment_and_assignment("landing", "v1")
    again, unknown = store.experiment_and_assignment("landing", "v2")
    assert (stored, unknown) == (placed, None) and again is first
    with store.engine.begin() as conn:
        conn.execute(update(experiments).where(experiments.c.key == "landing").values(status="stopped"))
    assert ab_client.get("/assign?visitor_id=v1").get_json() == {
        "visitor_id": "v1", "experiment": "landing", "variant": "A", "in_experiment": False, "status": "stopped"}
    for n in range(PARSED_EXPERIMENTS + 10):
        with store.engine.begin() as conn:
            conn.execute(update(experiments).where(experiments.c.key == "landing").values(description=f"d{n}"))
        assert store.experiment_and_assignment("landing", "v1")[0].description == f"d{n}"
    assert store._parsed.cache_info().currsize == PARSED_EXPERIMENTS
