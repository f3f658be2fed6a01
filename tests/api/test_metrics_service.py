import uuid
from datetime import UTC, datetime, timedelta

import pytest


def event(visitor, variant="A", event_type="page_view", **extra):
    return {"visitor_id": visitor, "variant": variant, "event_type": event_type, **extra}


def post(client, payload):
    return client.post("/events", json=payload)


NOTHING_QUEUED = {"queued": 0, "queued_more": False, "oldest_queued_seconds": None, "failed": 0, "failed_more": False}


def test_health(metrics_client):
    assert metrics_client.get("/health").get_json() == {"status": "ok", "folding": NOTHING_QUEUED}


def test_single_and_batch_ingest(metrics_client, metrics_app):
    assert post(metrics_client, event("v1")).get_json() == {"accepted": 1, "duplicates": 0}
    response = post(metrics_client, [event("v2"), event("v2", event_type="cta_click")])
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 2, "duplicates": 0}
    assert metrics_app.extensions["metrics_store"].count_events() == 3


def test_repeated_event_id_is_stored_once(metrics_client, metrics_app):
    event_id = str(uuid.uuid4())
    assert post(metrics_client, event("v1", event_id=event_id)).get_json() == {"accepted": 1, "duplicates": 0}
    assert post(metrics_client, event("v1", event_id=event_id)).get_json() == {"accepted": 0, "duplicates": 1}
    twice_in_batch = [event("v2", event_id=str(uuid.UUID(int=7))), event("v2", event_id=str(uuid.UUID(int=7)))]
    assert post(metrics_client, twice_in_batch).get_json() == {"accepted": 1, "duplicates": 1}
    assert metrics_app.extensions["metrics_store"].count_events() == 2


def test_bad_batch_lists_every_problem_and_stores_nothing(metrics_client, metrics_app):
    response = post(metrics_client, [event("v1"), event("v2", event_type="buy"), {"variant": "A"}])
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(1, "event_type"), (2, "visitor_id"), (2, "event_type")}
    assert metrics_app.extensions["metrics_store"].count_events() == 0


@pytest.mark.parametrize("body", [b"", b"{oops", b"\xff\xfe"])
def test_malformed_bodies_get_400(metrics_client, body):
    response = metrics_client.post("/events", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"


def test_oversized_body_gets_413(metrics_client):
    huge = [event(f"v{i}", properties={"pad": "x" * 1000}) for i in range(400)]
    response = post(metrics_client, huge)
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"


def seed(client):
    # A: 4 viewers, 2 click, 1 signs up; B: 2 viewers, 2 click, 2 sign up; one B click without a view
    rows = [event(f"a{i}") for i in range(4)] + [event("a0"), event("a0")]
    rows += [event("a0", event_type="cta_click"), event("a1", event_type="cta_click"),
             event("a1", event_type="form_submit")]
    rows += [event(f"b{i}", "B") for i in range(2)]
    rows += [event(f"b{i}", "B", "cta_click") for i in range(2)]
    rows += [event(f"b{i}", "B", "form_submit") for i in range(2)]
    rows += [event("b9", "B", "cta_click")]
    assert post(client, rows).status_code == 202


def test_stats_totals_matrix_and_conversion(metrics_client):
    seed(metrics_client)
    stats = metrics_client.get("/stats").get_json()
    assert stats["total_events"] == 16
    assert stats["unique_visitors"] == 7
    assert stats["by_variant"] == {"A": {"events": 9, "visitors": 4}, "B": {"events": 7, "visitors": 3}}
    assert stats["by_event_type"]["page_view"] == {"events": 8, "visitors": 6}
    assert stats["by_event_type"]["cta_click"] == {"events": 5, "visitors": 5}
    cell = next(c for c in stats["matrix"] if c["variant"] == "A" and c["event_type"] == "page_view")
    assert cell == {"variant": "A", "event_type": "page_view", "events": 6, "visitors": 4}
    conv = stats["conversion"]
    assert conv["A"]["visitors"] == 4
    assert conv["A"]["cta_click"] == {"visitors": 2, "rate": 0.5}
    assert conv["A"]["form_submit"] == {"visitors": 1, "rate": 0.25}
    assert conv["B"]["cta_click"] == {"visitors": 2, "rate": 1.0}  # b9 never viewed the page


def test_stats_filters(metrics_client):
    seed(metrics_client)
    only_b = metrics_client.get("/stats?variant=B").get_json()
    assert set(only_b["by_variant"]) == {"B"}
    clicks = metrics_client.get("/stats?event_type=cta_click").get_json()
    assert set(clicks["by_event_type"]) == {"cta_click"}
    assert clicks["total_events"] == 5
    other = metrics_client.get("/stats?experiment=hero").get_json()
    assert other["total_events"] == 0 and other["conversion"] == {}


def test_stats_time_window(metrics_client):
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    post(metrics_client, [event("old", timestamp=old), event("new")])
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = metrics_client.get("/stats", query_string={"since": since}).get_json()
    assert recent["total_events"] == 1
    until = metrics_client.get("/stats", query_string={"until": since}).get_json()
    assert until["total_events"] == 1


@pytest.mark.parametrize("query,field", [("event_type=buy", "event_type"), ("event_type=b%20uy", "event_type"),
                                         ("since=yesterday", "since"), ("since=2026-02-01&until=2026-01-01", "since")])
@pytest.mark.parametrize("path", ["/stats", "/stats/timeseries", "/stats/funnel"])
def test_stats_bad_filters_get_400(metrics_client, path, query, field):
    response = metrics_client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


def test_excluded_events_are_stored_but_not_counted(metrics_client, metrics_app):
    post(metrics_client, [event("v1"), event("qa", "B", forced=True), event("out", in_experiment=False)])
    assert metrics_app.extensions["metrics_store"].count_events() == 1
    stats = metrics_client.get("/stats").get_json()
    assert stats["total_events"] == 1
    assert set(stats["by_variant"]) == {"A"}
    from sqlalchemy import func, select

    from metrics_service.store import events

    with metrics_app.extensions["metrics_store"].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3


def visitors_in_several_experiments(count=300):
    """Each visitor in one to three experiments (a sticky variant in each), viewing and sometimes
    clicking or signing up, over the last five hours, sent in a shuffled order."""
    import random

    rng = random.Random(9)
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        for experiment in rng.sample(["landing", "hero", "pricing"], rng.randint(1, 3)):
            variant = rng.choice("AB")
            for event_type in ["page_view", "cta_click", "form_submit"][:rng.randint(1, 3)]:
                at = now - timedelta(minutes=rng.randint(0, 300))
                rows.append(event(f"v{i}", variant, event_type, experiment=experiment, timestamp=at.isoformat()))
    rng.shuffle(rows)
    return rows


def distinct(rows, **match):
    return len({r["visitor_id"] for r in rows if all(r[k] == v for k, v in match.items())})


def test_stats_across_experiments_count_each_visitor_once(metrics_client):
    rows = visitors_in_several_experiments()
    for start in range(0, len(rows), 250):
        assert post(metrics_client, rows[start:start + 250]).status_code == 202
    stats = metrics_client.get("/stats").get_json()
    assert stats["total_events"] == len(rows)
    assert stats["unique_visitors"] == distinct(rows) == 300
    for variant in "AB":
        assert stats["by_variant"][variant]["visitors"] == distinct(rows, variant=variant)
        only = metrics_client.get(f"/stats?variant={variant}").get_json()
        assert only["unique_visitors"] == distinct(rows, variant=variant)
    for event_type in ("page_view", "cta_click", "form_submit"):
        assert stats["by_event_type"][event_type]["visitors"] == distinct(rows, event_type=event_type)
    for cell in stats["matrix"]:
        assert cell["visitors"] == distinct(rows, variant=cell["variant"], event_type=cell["event_type"])
    viewers = {(r["variant"], r["visitor_id"]) for r in rows if r["event_type"] == "page_view"}
    for variant, conversion in stats["conversion"].items():
        assert conversion["visitors"] == sum(1 for v, _ in viewers if v == variant)
        clickers = {r["visitor_id"] for r in rows if r["variant"] == variant and r["event_type"] == "cta_click"}
        assert conversion["cta_click"]["visitors"] == len({vid for v, vid in viewers if v == variant} & clickers)
    # within one experiment a visitor counts once per variant, as before
    hero = [r for r in rows if r["experiment"] == "hero"]
    by_hero = metrics_client.get("/stats?experiment=hero").get_json()
    assert by_hero["unique_visitors"] == len({(r["variant"], r["visitor_id"]) for r in hero})


def test_time_series_and_funnel_across_experiments_count_each_visitor_once(metrics_client):
    rows = visitors_in_several_experiments()
    assert post(metrics_client, rows[:900]).status_code == 202
    assert post(metrics_client, rows[900:]).status_code == 202
    series = metrics_client.get("/stats/timeseries?interval=day").get_json()["series"]
    expected = {}
    for r in rows:
        bucket = datetime.fromisoformat(r["timestamp"]).date()
        expected.setdefault((bucket, r["variant"]), set()).add(r["visitor_id"])
    assert {(datetime.fromisoformat(p["bucket"].replace("Z", "+00:00")).date(), p["variant"]): p["visitors"]
            for p in series} == {key: len(ids) for key, ids in expected.items()}
    funnel = metrics_client.get("/stats/funnel").get_json()
    for step in funnel["variants"]:
        assert step["steps"][0]["visitors"] == distinct(rows, variant=step["variant"], event_type="page_view")


def test_a_registered_event_type_filters_the_reports_counting_each_visitor_once(metrics_client, metrics_app):
    import random

    metrics_app.extensions["catalogue_store"].add_event_type("order", "")
    rows = visitors_in_several_experiments()
    rng = random.Random(4)
    orders = [{**row, "event_type": "order", "event_id": str(uuid.UUID(int=n))}
              for n, row in enumerate(r for r in rows if r["event_type"] == "page_view") if rng.random() < 0.3]
    for start in range(0, len(rows + orders), 500):
        assert post(metrics_client, (rows + orders)[start:start + 500]).status_code == 202
    stats = metrics_client.get("/stats?event_type=order").get_json()
    assert stats["total_events"] == len(orders)
    assert stats["unique_visitors"] == distinct(orders) > 50
    assert stats["by_event_type"] == {"order": {"events": len(orders), "visitors": distinct(orders)}}
    for variant in "AB":
        assert stats["by_variant"][variant]["visitors"] == distinct(orders, variant=variant)
        only = metrics_client.get(f"/stats?event_type=order&variant={variant}").get_json()
        assert only["unique_visitors"] == distinct(orders, variant=variant)
    for cell in stats["matrix"]:
        assert cell["visitors"] == distinct(orders, variant=cell["variant"])
    hero = [r for r in orders if r["experiment"] == "hero"]
    by_hero = metrics_client.get("/stats?event_type=order&experiment=hero").get_json()
    assert by_hero["total_events"] == len(hero)
    assert by_hero["unique_visitors"] == len({(r["variant"], r["visitor_id"]) for r in hero})
    series = metrics_client.get("/stats/timeseries?event_type=order&interval=day").get_json()["series"]
    expected = {}
    for r in orders:
        expected.setdefault((datetime.fromisoformat(r["timestamp"]).date(), r["variant"]), set()).add(r["visitor_id"])
    assert {(datetime.fromisoformat(p["bucket"].replace("Z", "+00:00")).date(), p["variant"]): p["visitors"]
            for p in series} == {key: len(ids) for key, ids in expected.items()}
