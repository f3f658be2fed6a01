import pytest

from core.flags import in_rollout
from tests.helpers import settings_for


def test_flags_list_has_typed_definitions(ab_client):
    flags = {f["key"]: f for f in ab_client.get("/flags").get_json()["flags"]}
    assert flags["cta_text"]["type"] == "string"
    assert flags["accent_color"]["type"] == "color"
    assert flags["show_testimonials"] == {**flags["show_testimonials"], "type": "boolean", "rollout": 1.0}


def test_create_and_update_typed_flags(ab_client, admin_headers):
    created = ab_client.post("/flags", json={"key": "max_items", "type": "number", "value": 5},
                             headers=admin_headers)
    assert created.status_code == 201
    assert created.get_json()["off_value"] == 5
    assert ab_client.get("/config").get_json()["max_items"] == 5
    updated = ab_client.patch("/flags/max_items", json={"value": 7.5}, headers=admin_headers)
    assert updated.get_json()["value"] == 7.5
    assert ab_client.post("/flags", json={"key": "max_items", "type": "number", "value": 1},
                          headers=admin_headers).status_code == 409


@pytest.mark.parametrize("body,field", [
    ({"key": "c", "type": "color", "value": "blue"}, "value"),
    ({"key": "c", "type": "color", "value": "#000000", "off_value": "url(x)"}, "off_value"),
    ({"key": "n", "type": "number", "value": "5"}, "value"),
    ({"key": "b", "type": "boolean", "value": "yes"}, "value"),
    ({"key": "t", "type": "json", "value": {}}, "type"),
    ({"key": "r", "type": "boolean", "value": True, "rollout": 2}, "rollout"),
])
def test_flag_validation(ab_client, admin_headers, body, field):
    response = ab_client.post("/flags", json=body, headers=admin_headers)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_flag_writes_need_the_token(ab_client):
    assert ab_client.post("/flags", json={"key": "x", "type": "boolean", "value": True}).status_code == 401
    assert ab_client.patch("/flags/cta_text", json={"value": "x"}).status_code == 401


def test_config_rejects_bad_colour(ab_client, admin_headers):
    response = ab_client.post("/config", json={"accent_color": "javascript:alert(1)"}, headers=admin_headers)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "accent_color"


def test_rollout_resolves_per_visitor_and_only_grows(ab_client, admin_headers):
    ab_client.post("/flags", json={"key": "new_layout", "type": "boolean", "value": True, "rollout": 0.25},
                   headers=admin_headers)
    ids = [f"v{i}" for i in range(600)]
    on_25 = {v for v in ids if ab_client.get(f"/config?visitor_id={v}").get_json()["new_layout"]}
    assert on_25 == {v for v in ids if in_rollout("new_layout", v, 0.25)}
    assert 0.19 < len(on_25) / len(ids) < 0.31
    ab_client.patch("/flags/new_layout", json={"rollout": 0.6}, headers=admin_headers)
    on_60 = {v for v in ids if ab_client.get(f"/config?visitor_id={v}").get_json()["new_layout"]}
    assert on_25 <= on_60 and 0.53 < len(on_60) / len(ids) < 0.67


def test_flag_changes_are_audited_with_the_token_name(db_url):
    from ab_service import create_app

    app = create_app(settings_for("ab_service", DATABASE_URL=db_url, ADMIN_TOKEN="root-token",
                                  ADMIN_TOKENS="alice:alice-t"))
    client = app.test_client()
    alice = {"Authorization": "Bearer alice-t"}
    assert client.post("/config", json={"cta_text": "Hello"}, headers=alice).status_code == 200
    client.patch("/flags/cta_text", json={"rollout": 0.5}, headers={"Authorization": "Bearer root-token"})
    entries = client.get("/audit", headers=alice).get_json()["entries"]
    assert [(e["actor"], e["key"]) for e in entries[:2]] == [("admin", "cta_text"), ("alice", "cta_text")]
    assert entries[1]["old"]["value"] == "Get started" and entries[1]["new"]["value"] == "Hello"
    assert entries[0]["old"]["rollout"] == 1.0 and entries[0]["new"]["rollout"] == 0.5
