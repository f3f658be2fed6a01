"""Scheduled experiment starts and stops and scheduled flag changes, on both backends: validated when
set, carried out by the scheduler once (whoever runs it, however often), each in the audit log as
`scheduler`; a start the manual checks refuse is recorded and cleared, not tried again. The scheduler
is called with the time it runs at, so nothing waits for the clock."""
from datetime import UTC, datetime, timedelta

import pytest

from ab_service import scheduler
from core.events import to_millis
from tests.helpers import run_together

VARIANTS = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]


def later(**delta) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def run_scheduler(app, at: datetime) -> int:
    with app.app_context():
        return scheduler.run_due(app.extensions["ab_store"], to_millis(at))


def scheduler_entries(client, headers, key):
    entries = client.get("/audit", headers=headers).get_json()["entries"]
    return [e for e in entries if e["actor"] == "scheduler" and e["key"] == key]


def test_an_experiment_starts_and_stops_at_its_times_once(ab_app, ab_client, admin_headers):
    start, stop = later(hours=1), later(hours=2)
    created = ab_client.post("/experiments", headers=admin_headers, json={
        "key": "spring", "variants": VARIANTS, "start_at": start.isoformat(),
        "stop_at": stop.astimezone(timezone_plus_two()).isoformat()})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["start_at"] == start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert created.get_json()["stop_at"].endswith("Z")

    assert run_scheduler(ab_app, start - timedelta(seconds=1)) == 0
    assert ab_client.get("/experiments/spring").get_json()["status"] == "draft"
    assert run_scheduler(ab_app, start) == 1
    started = ab_client.get("/experiments/spring").get_json()
    assert (started["status"], started["start_at"]) == ("running", None)
    assert started["stop_at"] is not None
    assert run_scheduler(ab_app, start + timedelta(minutes=1)) == 0  # done once

    assert run_scheduler(ab_app, stop + timedelta(seconds=30)) == 1
    stopped = ab_client.get("/experiments/spring").get_json()
    assert (stopped["status"], stopped["stop_at"]) == ("stopped", None)
    entries = scheduler_entries(ab_client, admin_headers, "spring")
    assert [(e["old"]["status"], e["new"]["status"]) for e in reversed(entries)] == [("draft", "running"),
                                                                                     ("running", "stopped")]


def timezone_plus_two():
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_schedulers_running_together_carry_a_transition_out_once(ab_app, ab_client, admin_headers):
    start = later(hours=1)
    for key in ("one", "two", "three"):
        ab_client.post("/experiments", headers=admin_headers,
                       json={"key": key, "variants": VARIANTS, "start_at": start.isoformat()})
    done = run_together(*[lambda: run_scheduler(ab_app, start)] * 4)
    assert sum(done) == 3, done
    for key in ("one", "two", "three"):
        assert len(scheduler_entries(ab_client, admin_headers, key)) == 1


@pytest.mark.parametrize("body, field", [
    ({"start_at": "2020-01-01T00:00:00Z"}, "start_at"),
    ({"stop_at": "2020-01-01T00:00:00+00:00"}, "stop_at"),
    ({"start_at": "2099-01-02T00:00:00Z", "stop_at": "2099-01-01T00:00:00Z"}, "stop_at"),
    ({"start_at": "2099-01-01T00:00:00"}, "start_at"),  # no timezone
    ({"start_at": "tomorrow"}, "start_at"),
    ({"start_at": "2099-01-01T00:00:00Z", "status": "running"}, "start_at"),
    ({"start_at": None}, "start_at"),
])
def test_a_schedule_that_cannot_be_kept_is_refused(ab_client, admin_headers, body, field):
    response = ab_client.post("/experiments", headers=admin_headers, json={"key": "bad", "variants": VARIANTS, **body})
    assert response.status_code == 400
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_a_patch_sets_checks_and_cancels_the_times(ab_app, ab_client, admin_headers):
    ab_client.post("/experiments", headers=admin_headers, json={"key": "later", "variants": VARIANTS})
    start = later(days=1)
    assert ab_client.patch("/experiments/later", headers=admin_headers,
                           json={"start_at": start.isoformat()}).status_code == 200
    refused = ab_client.patch("/experiments/later", headers=admin_headers,
                              json={"stop_at": (start - timedelta(hours=1)).isoformat()})
    assert refused.status_code == 400 and refused.get_json()["errors"][0]["field"] == "stop_at"
    assert ab_client.patch("/experiments/later", headers=admin_headers, json={"start_at": None}).status_code == 200
    assert ab_client.get("/experiments/later").get_json()["start_at"] is None
    assert run_scheduler(ab_app, start) == 0


def test_a_manual_start_clears_the_scheduled_one(ab_app, ab_client, admin_headers):
    start = later(hours=1)
    ab_client.post("/experiments", headers=admin_headers,
                   json={"key": "early", "variants": VARIANTS, "start_at": start.isoformat()})
    started = ab_client.patch("/experiments/early", headers=admin_headers, json={"status": "running"}).get_json()
    assert (started["status"], started["start_at"]) == ("running", None)
    assert run_scheduler(ab_app, start) == 0


def test_a_scheduled_start_that_would_conflict_is_refused_and_recorded_once(ab_app, ab_client, admin_headers):
    overriding = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"layout": "split"}}]
    start = later(hours=1)
    assert ab_client.post("/experiments", headers=admin_headers, json={
        "key": "clash", "variants": overriding, "start_at": start.isoformat()}).status_code == 201
    # the built-in `landing` experiment runs and overrides `layout` for every visitor
    assert run_scheduler(ab_app, start) == 1
    clash = ab_client.get("/experiments/clash").get_json()
    assert (clash["status"], clash["start_at"]) == ("draft", None)
    [entry] = scheduler_entries(ab_client, admin_headers, "clash")
    assert entry["action"] == "refused" and "landing" in entry["new"]["refused"]
    assert run_scheduler(ab_app, start + timedelta(minutes=5)) == 0


def test_a_flag_change_is_scheduled_listed_carried_out_once_and_audited(ab_app, ab_client, admin_headers):
    at = later(hours=3)
    response = ab_client.post("/flags/hero_headline/schedule", headers=admin_headers,
                              json={"at": at.isoformat(), "value": "Summer sale"})
    assert response.status_code == 201, response.get_json()
    schedule = response.get_json()
    assert schedule["changes"] == {"value": "Summer sale"} and schedule["created_by"] == "admin"
    assert ab_client.get("/flags/hero_headline/schedule").get_json()["schedules"] == [schedule]

    assert run_scheduler(ab_app, at - timedelta(seconds=1)) == 0
    done = run_together(*[lambda: run_scheduler(ab_app, at)] * 3)
    assert sum(done) == 1
    assert ab_client.get("/flags/hero_headline").get_json()["value"] == "Summer sale"
    assert ab_client.get("/flags/hero_headline/schedule").get_json()["schedules"] == []
    [entry] = scheduler_entries(ab_client, admin_headers, "hero_headline")
    assert entry["new"]["value"] == "Summer sale"


def test_a_scheduled_flag_change_is_cancelled(ab_app, ab_client, admin_headers):
    at = later(hours=1)
    schedule = ab_client.post("/flags/cta_text/schedule", headers=admin_headers,
                              json={"at": at.isoformat(), "rollout": 0.5}).get_json()
    path = f"/flags/cta_text/schedule/{schedule['id']}"
    assert ab_client.delete(path).status_code == 401
    assert ab_client.delete(path, headers=admin_headers).get_json() == {"deleted": schedule["id"]}
    assert ab_client.delete(path, headers=admin_headers).status_code == 404
    assert run_scheduler(ab_app, at) == 0


def test_a_scheduled_flag_change_that_no_longer_fits_is_refused_and_recorded(ab_app, ab_client, admin_headers):
    at = later(hours=1)
    ab_client.post("/flags", headers=admin_headers, json={"key": "banner", "type": "string", "value": "Hello"})
    ab_client.post("/flags/banner/schedule", headers=admin_headers, json={"at": at.isoformat(), "value": "Hi"})
    assert ab_client.patch("/flags/banner", headers=admin_headers, json={"allowed": ["Hello"]}).status_code == 200
    assert run_scheduler(ab_app, at) == 1
    assert ab_client.get("/flags/banner").get_json()["value"] == "Hello"
    [entry] = scheduler_entries(ab_client, admin_headers, "banner")
    assert entry["action"] == "refused"


@pytest.mark.parametrize("body", [
    {"at": "2099-01-01T00:00:00Z"},  # nothing to change
    {"at": "2020-01-01T00:00:00Z", "value": "x"},
    {"at": "2099-01-01T00:00:00Z", "value": 3},  # not a string
    {"at": "2099-01-01T00:00:00Z", "rollout": 2},
    {"value": "x"},
])
def test_a_flag_schedule_that_cannot_be_kept_is_refused(ab_client, admin_headers, body):
    assert ab_client.post("/flags/hero_headline/schedule", headers=admin_headers, json=body).status_code == 400


def test_flag_schedules_need_a_known_flag_and_the_admin_token(ab_client, admin_headers):
    body = {"at": "2099-01-01T00:00:00Z", "value": "x"}
    assert ab_client.post("/flags/hero_headline/schedule", json=body).status_code == 401
    assert ab_client.post("/flags/nope/schedule", headers=admin_headers, json=body).status_code == 404
    assert ab_client.get("/flags/nope/schedule").status_code == 404
