import pytest
from sqlalchemy import func, select

from ab_service.store import assignments
from core.bucketing import assign_variant
from tests.helpers import sqlite_only

HERO = {
    "key": "hero",
    "description": "Hero image test",
    "variants": [{"name": "A", "weight": 0.2}, {"name": "B", "weight": 0.3}, {"name": "C", "weight": 0.5}],
    "coverage": 0.8,
    "status": "running",
}


def create(client, headers, **changes):
    return client.post("/experiments", json={**HERO, **changes}, headers=headers)


def patch(client, headers, key, **changes):
    return client.patch(f"/experiments/{key}", json=changes, headers=headers)


def assign(client, visitor, experiment="hero"):
    return client.get(f"/assign?visitor_id={visitor}&experiment={experiment}").get_json()


def stored_assignments(app, experiment):
    with app.extensions["ab_store"].engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(assignments).where(assignments.c.experiment == experiment)
        ).scalar_one()


def test_create_list_get(ab_client, admin_headers):
    response = create(ab_client, admin_headers)
    assert response.status_code == 201
    assert response.get_json() == {**HERO, "seed": None, "namespace": None, "condition": None, "start_at": None,
                                   "stop_at": None,
                                   "primary_metric": None, "secondary_metrics": [], "guardrail_metrics": [],
                                   "variants": [{**v, "overrides": {}} for v in HERO["variants"]]}
    keys = [e["key"] for e in ab_client.get("/experiments").get_json()["experiments"]]
    assert keys == ["hero", "landing"]
    assert ab_client.get("/experiments/hero").get_json()["coverage"] == 0.8
    assert ab_client.get("/experiments/nope").status_code == 404
    assert create(ab_client, admin_headers).status_code == 409


def test_writes_need_the_admin_token(ab_client, admin_headers):
    assert ab_client.post("/experiments", json=HERO).status_code == 401
    create(ab_client, admin_headers)
    assert ab_client.patch("/experiments/hero", json={"status": "stopped"}).status_code == 401
    assert ab_client.get("/experiments/hero").get_json()["status"] == "running"


@pytest.mark.parametrize("changes,field", [
    ({"variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.4}]}, "variants"),
    ({"variants": [{"name": "A", "weight": 0.5}, {"name": "A", "weight": 0.5}]}, "variants"),
    ({"variants": [{"name": "A", "weight": 1.0}]}, "variants"),
    ({"variants": [{"name": f"V{i}", "weight": 1 / 11} for i in range(11)]}, "variants"),
    ({"variants": [{"name": "A B", "weight": 0.5}, {"name": "C", "weight": 0.5}]}, "variants.0.name"),
    ({"status": "paused"}, "status"),
    ({"coverage": 1.5}, "coverage"),
    ({"key": "has space"}, "key"),
    ({"colour": "red"}, "colour"),
])
def test_create_validation_names_the_problem(ab_client, admin_headers, changes, field):
    response = create(ab_client, admin_headers, **changes)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_illegal_status_changes(ab_client, admin_headers):
    create(ab_client, admin_headers, status="draft")
    assert patch(ab_client, admin_headers, "hero", status="running").status_code == 200
    back = patch(ab_client, admin_headers, "hero", status="draft")
    assert back.status_code == 400 and back.get_json()["errors"][0]["field"] == "status"
    renamed = patch(ab_client, admin_headers, "hero",
                    variants=[{"name": "X", "weight": 0.5}, {"name": "Y", "weight": 0.5}])
    assert renamed.status_code == 400 and renamed.get_json()["errors"][0]["field"] == "variants"
    assert patch(ab_client, admin_headers, "hero").status_code == 400


@sqlite_only  # the hash decides; stickiness is tested on both backends
def test_running_assignment_uses_hash_weights_and_coverage(ab_client, admin_headers):
    create(ab_client, admin_headers)
    counts = {"A": 0, "B": 0, "C": 0, "out": 0}
    for i in range(3000):
        body = assign(ab_client, f"v{i}")
        expected = assign_variant(f"v{i}", ["A", "B", "C"], [0.2, 0.3, 0.5], 0.8, "hero")
        if expected is None:
            assert body["in_experiment"] is False and body["variant"] == "A"
            counts["out"] += 1
        else:
            assert body["in_experiment"] is True and body["variant"] == expected
            counts[expected] += 1
    assert 0.17 < counts["out"] / 3000 < 0.23
    assert 0.35 < counts["C"] / (3000 - counts["out"]) < 0.65


@sqlite_only  # the hash decides; stickiness is tested on both backends
def test_raising_coverage_only_adds_visitors(ab_client, admin_headers):
    create(ab_client, admin_headers, coverage=0.3)
    ids = [f"visitor-{i}" for i in range(2000)]
    before = {v: assign(ab_client, v) for v in ids}
    inside_before = {v for v, b in before.items() if b["in_experiment"]}
    assert 0.26 < len(inside_before) / len(ids) < 0.34
    patch(ab_client, admin_headers, "hero", coverage=0.7)
    after = {v: assign(ab_client, v) for v in ids}
    inside_after = {v for v, b in after.items() if b["in_experiment"]}
    assert inside_before <= inside_after
    assert 0.66 < len(inside_after) / len(ids) < 0.74
    assert all(after[v]["variant"] == before[v]["variant"] for v in inside_before)
    # new weights move no one who is already in
    patch(ab_client, admin_headers, "hero",
          variants=[{"name": "A", "weight": 0.6}, {"name": "B", "weight": 0.2}, {"name": "C", "weight": 0.2}])
    reweighted = {v: assign(ab_client, v) for v in ids}
    assert all(reweighted[v]["variant"] == after[v]["variant"] for v in inside_after)


def test_stopped_shows_control_and_keeps_assignments(ab_app, ab_client, admin_headers):
    create(ab_client, admin_headers, coverage=1.0)
    first = {f"v{i}": assign(ab_client, f"v{i}")["variant"] for i in range(100)}
    stored = stored_assignments(ab_app, "hero")
    assert stored == 100
    patch(ab_client, admin_headers, "hero", status="stopped")
    for visitor in first:
        body = assign(ab_client, visitor)
        assert body == {**body, "variant": "A", "in_experiment": False, "status": "stopped"}
    assert assign(ab_client, "newcomer")["variant"] == "A"
    assert stored_assignments(ab_app, "hero") == stored
    patch(ab_client, admin_headers, "hero", status="running")
    assert {v: assign(ab_client, v)["variant"] for v in first} == first


def test_draft_assigns_no_one(ab_app, ab_client, admin_headers):
    create(ab_client, admin_headers, status="draft")
    for i in range(50):
        body = assign(ab_client, f"v{i}")
        assert body["variant"] == "A" and body["in_experiment"] is False
    assert stored_assignments(ab_app, "hero") == 0


def test_several_experiments_at_once(ab_client, admin_headers):
    create(ab_client, admin_headers, coverage=1.0)
    create(ab_client, admin_headers, key="pricing", variants=[{"name": "cheap", "weight": 0.5},
                                                             {"name": "dear", "weight": 0.5}])
    assert assign(ab_client, "v1", "landing")["variant"] in {"A", "B"}
    assert assign(ab_client, "v1", "hero")["variant"] in {"A", "B", "C"}
    assert assign(ab_client, "v1", "pricing")["variant"] in {"cheap", "dear"}


def test_changes_are_audited(ab_client, admin_headers):
    create(ab_client, admin_headers, coverage=0.5)
    patch(ab_client, admin_headers, "hero", coverage=0.9)
    assert ab_client.get("/audit").status_code == 401
    entries = ab_client.get("/audit", headers=admin_headers).get_json()["entries"]
    assert [(e["entity"], e["key"], e["action"]) for e in entries[:2]] == [
        ("experiment", "hero", "update"), ("experiment", "hero", "create")]
    assert entries[0]["old"]["coverage"] == 0.5 and entries[0]["new"]["coverage"] == 0.9
    assert entries[0]["actor"] == "admin"
    assert entries[0]["at"] >= entries[1]["at"]


def test_an_experiment_names_its_metrics(ab_client, admin_headers):
    created = create(ab_client, admin_headers, primary_metric="form_submit", secondary_metrics=["cta_click"],
                     guardrail_metrics=["errors", "refunds"])
    assert created.status_code == 201, created.get_json()
    body = ab_client.get("/experiments/hero").get_json()
    assert (body["primary_metric"], body["secondary_metrics"], body["guardrail_metrics"]) == (
        "form_submit", ["cta_click"], ["errors", "refunds"])
    changed = patch(ab_client, admin_headers, "hero", guardrail_metrics=["errors"], primary_metric=None)
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["primary_metric"], changed.get_json()["guardrail_metrics"]) == (None, ["errors"])
    twice = patch(ab_client, admin_headers, "hero", secondary_metrics=["a", "a"])
    assert twice.status_code == 400 and twice.get_json()["errors"][0]["field"] == "secondary_metrics"
    assert patch(ab_client, admin_headers, "hero", guardrail_metrics=["not a key"]).status_code == 400
    landing = ab_client.get("/experiments/landing").get_json()
    assert (landing["primary_metric"], landing["secondary_metrics"], landing["guardrail_metrics"]) == (None, [], [])
