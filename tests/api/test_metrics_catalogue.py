"""Event types, metrics, mean-metric readouts, the summary's recommendation and the plan, through the API."""
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from tests.api.test_results import events_for, load
from tests.helpers import ADMIN_TOKEN, INGEST_KEY, flask_app


@pytest.fixture
def metrics_app(db_url):
    """metrics_service with an admin token configured (its writes need one)."""
    with flask_app("metrics_service", DATABASE_URL=db_url, INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN) as app:
        yield app


@pytest.fixture
def admin(metrics_app, admin_headers):
    """A client that sends the admin token."""
    client = metrics_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = admin_headers["Authorization"]
    return client


def define(client, *metrics, event_types=("pricing_click", "order")):
    for key in event_types:
        assert client.post("/event-types", json={"key": key, "description": f"{key} events"}).status_code == 201
    for metric in metrics:
        response = client.post("/metrics", json=metric)
        assert response.status_code == 201, response.get_json()


REVENUE = {"key": "revenue", "name": "Revenue per visitor", "event_type": "order", "kind": "value"}
ORDERS = {"key": "orders", "name": "Orders per visitor", "event_type": "order", "kind": "count"}
PRICING = {"key": "pricing", "name": "Saw pricing", "event_type": "pricing_click", "kind": "conversion"}


def test_event_types_are_registered_by_admins_and_checked_at_ingest(metrics_client, admin):
    assert metrics_client.post("/event-types", json={"key": "pricing_click"}).status_code == 401
    refused = metrics_client.post("/events", json=[
        {"visitor_id": "v", "variant": "A", "event_type": "page_view"},
        {"visitor_id": "v", "variant": "A", "event_type": "pricing_click"}])
    assert refused.status_code == 400
    [problem] = refused.get_json()["errors"]
    assert problem["index"] == 1 and problem["field"] == "event_type" and "pricing_click" in problem["message"]
    define(admin, event_types=("pricing_click",))
    again = admin.post("/event-types", json={"key": "pricing_click"})
    assert again.status_code == 409
    assert admin.post("/event-types", json={"key": "page_view"}).status_code == 409
    listed = metrics_client.get("/event-types").get_json()["event_types"]
    assert [(t["key"], t["builtin"]) for t in listed] == [
        ("page_view", True), ("cta_click", True), ("form_submit", True), ("pricing_click", False)]
    accepted = metrics_client.post("/events", json={"visitor_id": "v", "variant": "A", "event_type": "pricing_click",
                                                    "value": 12.5})
    assert accepted.status_code == 202 and accepted.get_json()["accepted"] == 1
    stats = metrics_client.get("/stats?experiment=landing").get_json()
    assert stats["by_event_type"]["pricing_click"] == {"events": 1, "visitors": 1}
    assert {(c["event_type"], c["visitors"]) for c in stats["matrix"]} == {("pricing_click", 1)}
    for bad in ('"12"', "true", "1e999"):
        response = metrics_client.post("/events", content_type="application/json", data='{"visitor_id": "v", '
                                       f'"variant": "A", "event_type": "cta_click", "value": {bad}}}')
        assert response.status_code == 400, bad
        assert response.get_json()["errors"][0]["field"] == "value"


def at_hours_ago(hours, **event):
    """An event `hours` hours back, in the middle of that hour (so it stays in the hour's bucket)."""
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    return {"experiment": "landing", **event, "timestamp": (now - timedelta(hours=hours + 1)).isoformat()}


def hour_of(bucket):
    return datetime.fromisoformat(bucket.replace("Z", "+00:00"))


def test_the_event_reports_filter_by_a_registered_event_type(metrics_client, admin):
    define(admin)
    devices = {"a0": "mobile", "b0": "mobile", "a1": "desktop"}
    rows = [at_hours_ago(3, visitor_id=v, variant=v[0].upper(), event_type="page_view",
                         **({"context": {"device": devices[v]}} if v in devices else {}))
            for v in ("a0", "a1", "a2", "a3", "b0", "b1", "b2")]
    orders = [at_hours_ago(2, visitor_id="a0", variant="A", event_type="order", value=10.0),
              at_hours_ago(0, visitor_id="a0", variant="A", event_type="order", value=5.0),
              at_hours_ago(0, visitor_id="a1", variant="A", event_type="order"),
              at_hours_ago(2, visitor_id="b0", variant="B", event_type="order"),
              at_hours_ago(0, visitor_id="b9", variant="B", event_type="order"),  # never saw the page
              at_hours_ago(0, visitor_id="a0", variant="B", event_type="order", experiment="hero")]
    rows += orders + [at_hours_ago(0, visitor_id="a2", variant="A", event_type="pricing_click"),
                      at_hours_ago(0, visitor_id="a3", variant="A", event_type="cta_click")]
    load(metrics_client, rows)

    everywhere = metrics_client.get("/stats?event_type=order").get_json()
    assert everywhere["total_events"] == 6
    assert everywhere["unique_visitors"] == 4  # a0 (in two experiments), a1, b0, b9
    assert everywhere["by_variant"] == {"A": {"events": 3, "visitors": 2}, "B": {"events": 3, "visitors": 3}}
    assert everywhere["by_event_type"] == {"order": {"events": 6, "visitors": 4}}
    assert {(c["variant"], c["event_type"], c["events"], c["visitors"]) for c in everywhere["matrix"]} == {
        ("A", "order", 3, 2), ("B", "order", 3, 3)}
    assert everywhere["filters"]["event_type"] == "order"
    landing = metrics_client.get("/stats?event_type=order&experiment=landing").get_json()
    assert (landing["total_events"], landing["unique_visitors"]) == (5, 4)  # a0 and a1 in A, b0 and b9 in B
    assert landing["by_variant"] == {"A": {"events": 3, "visitors": 2}, "B": {"events": 2, "visitors": 2}}
    only_b = metrics_client.get("/stats?event_type=order&variant=B").get_json()
    assert (only_b["total_events"], only_b["unique_visitors"]) == (3, 3)
    pricing = metrics_client.get("/stats?event_type=pricing_click").get_json()
    assert (pricing["total_events"], pricing["unique_visitors"]) == (1, 1)
    assert metrics_client.get("/stats?event_type=page_view").get_json()["unique_visitors"] == 7

    def per_bucket(series, size, visitors=None, **match):
        """The answer's series and the one the rows make (of `visitors`, or everyone): (events, visitors)
        per (bucket, variant)."""
        expected = {}
        for row in orders:
            if all(row[k] == v for k, v in match.items()) and row["visitor_id"] in (visitors or row["visitor_id"]):
                at = hour_of(row["timestamp"])
                start = at.replace(minute=0) if size == "hour" else at.replace(hour=0, minute=0)
                events, seen = expected.setdefault((start, row["variant"]), [0, set()])
                expected[(start, row["variant"])] = [events + 1, seen | {row["visitor_id"]}]
        answered = {(hour_of(p["bucket"]), p["variant"]): (p["events"], p["visitors"]) for p in series["series"]}
        return answered, {key: (events, len(seen)) for key, (events, seen) in expected.items()}

    mobile = metrics_client.get("/stats?event_type=order&experiment=landing&segment=device:mobile").get_json()
    assert (mobile["total_events"], mobile["unique_visitors"]) == (3, 2)  # a0 twice, b0
    assert mobile["by_variant"] == {"A": {"events": 2, "visitors": 1}, "B": {"events": 1, "visitors": 1}}
    mobile_series = metrics_client.get("/stats/timeseries?event_type=order&experiment=landing&interval=hour"
                                       "&segment=device:mobile").get_json()
    answered, expected = per_bucket(mobile_series, "hour", {"a0", "b0"}, experiment="landing")
    assert answered == expected and len(expected) == 3

    hourly = metrics_client.get("/stats/timeseries?event_type=order&experiment=landing&interval=hour").get_json()
    answered, expected = per_bucket(hourly, "hour", experiment="landing")
    assert answered == expected and len(expected) == 4
    daily = metrics_client.get("/stats/timeseries?event_type=order&interval=day").get_json()
    answered, expected = per_bucket(daily, "day")
    assert answered == expected

    for path in ("/stats", "/stats/timeseries", "/stats/funnel"):
        for unknown in ("refund", "<b>"):
            refused = metrics_client.get(path, query_string={"event_type": unknown})
            assert refused.status_code == 400, (path, unknown)
            body = refused.get_json()
            assert body["error"] == "bad_request" and [e["field"] for e in body["errors"]] == ["event_type"]
    for path in ("/stats", "/stats/timeseries"):
        assert metrics_client.get(f"{path}?event_type=order").status_code == 200
    # the funnel spans its own steps: an event_type it would not apply is refused, not ignored
    refused = metrics_client.get("/stats/funnel?event_type=cta_click")
    assert refused.status_code == 400 and [e["field"] for e in refused.get_json()["errors"]] == ["event_type"]
    assert metrics_client.get("/stats/funnel").status_code == 200


def test_metrics_are_defined_listed_and_changed(metrics_client, admin):
    define(admin, REVENUE)
    assert metrics_client.post("/metrics", json=ORDERS).status_code == 401
    for bad, field in [({**ORDERS, "event_type": "nope"}, "event_type"), ({**ORDERS, "event_type": "page_view"},
                                                                         "event_type"),
                       ({**ORDERS, "cap": 10.0}, "cap"), ({**ORDERS, "kind": "median"}, "kind"),
                       ({**ORDERS, "direction": "up"}, "direction")]:
        response = admin.post("/metrics", json=bad)
        assert response.status_code == 400 and response.get_json()["errors"][0]["field"] == field, bad
    assert admin.post("/metrics", json={**ORDERS, "key": "form_submit"}).status_code == 409
    assert admin.post("/metrics", json=REVENUE).status_code == 409
    listed = {m["key"]: m for m in metrics_client.get("/metrics").get_json()["metrics"]}
    assert listed["form_submit"]["builtin"] and listed["cta_click"]["kind"] == "conversion"
    assert listed["revenue"] == {**REVENUE, "direction": "increase", "cap": None, "builtin": False}
    changed = admin.patch("/metrics/revenue", json={"cap": 100.0})
    assert changed.status_code == 200 and changed.get_json()["cap"] == 100.0
    assert metrics_client.get("/metrics/revenue").get_json()["cap"] == 100.0
    removed = admin.patch("/metrics/revenue", json={"cap": None})
    assert removed.get_json()["cap"] is None
    assert admin.patch("/metrics/form_submit", json={"name": "x"}).status_code == 404
    assert metrics_client.get("/metrics/nope").status_code == 404


def order_events(variant, visitors, rng, mean_log, prefix=None):
    """Each visitor sees the page; some order 1-3 times, each order a log-normal value."""
    rows, totals, counts = [], [], []
    for i in range(visitors):
        visitor = f"{prefix or variant}{i}"
        rows.append({"visitor_id": visitor, "variant": variant, "event_type": "page_view"})
        orders = rng.choice([0, 0, 0, 1, 1, 2, 3])
        values = [round(rng.lognormvariate(mean_log, 0.8), 2) for _ in range(orders)]
        rows += [{"visitor_id": visitor, "variant": variant, "event_type": "order", "value": v} for v in values]
        totals.append(sum(values))
        counts.append(orders)
    return rows, np.array(totals), np.array(counts)


def test_mean_metrics_read_as_scipy_computes_them(metrics_client, admin):
    rng = random.Random(3)
    define(admin, REVENUE, ORDERS, PRICING, {**REVENUE, "key": "revenue_capped", "cap": 40.0})
    rows_a, totals_a, counts_a = order_events("A", 300, rng, 3.0)
    rows_b, totals_b, counts_b = order_events("B", 320, rng, 3.3)
    load(metrics_client, rows_a + rows_b)
    for metric, a, b in [("revenue", totals_a, totals_b), ("orders", counts_a, counts_b),
                         ("revenue_capped", np.minimum(totals_a, 40.0), np.minimum(totals_b, 40.0))]:
        body = metrics_client.get(f"/experiments/landing/results?metric={metric}").get_json()
        assert body["kind"] == ("count" if metric == "orders" else "value") and body["method"] == "msprt"
        control, variant = body["variants"]
        assert control["visitors"] == 300 and variant["visitors"] == 320
        assert control["mean"] == pytest.approx(a.mean(), rel=1e-9)
        assert control["std"] == pytest.approx(a.std(ddof=1), rel=1e-9)
        assert variant["mean"] == pytest.approx(b.mean(), rel=1e-9)
        assert variant["p_value"] == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue, rel=1e-6)
        assert variant["uplift"] == pytest.approx(b.mean() / a.mean() - 1, rel=1e-9)
    pricing = metrics_client.get("/experiments/landing/results?metric=pricing").get_json()
    assert [v["conversions"] for v in pricing["variants"]] == [0, 0]
    assert metrics_client.get("/experiments/landing/results?metric=nope").status_code == 400
    windowed = metrics_client.get("/experiments/landing/results?metric=revenue&since=2020-01-01")
    assert windowed.status_code == 400


def test_a_metric_defined_later_reads_the_events_already_stored(metrics_client, admin):
    define(admin)
    rows, totals, _ = order_events("A", 50, random.Random(1), 3.0)
    load(metrics_client, rows + order_events("B", 50, random.Random(2), 3.0)[0])
    define(admin, REVENUE, event_types=())
    body = metrics_client.get("/experiments/landing/results?metric=revenue").get_json()
    assert body["variants"][0]["mean"] == pytest.approx(totals.mean(), rel=1e-9)


def guardrail_events(variant, visitors, converters, errors):
    rows = events_for(variant, visitors, converters, metric="form_submit")
    rows += [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "js_error"} for i in range(errors)]
    return rows


def test_a_guardrail_significantly_worse_blocks_shipping_and_is_named(metrics_client, admin):
    define(admin, {"key": "errors", "name": "Visitors with an error", "event_type": "js_error",
                                           "kind": "conversion", "direction": "decrease"},
           event_types=("js_error",))
    load(metrics_client, guardrail_events("A", 3000, 300, 60) + guardrail_events("B", 3000, 480, 400))
    summary = metrics_client.get("/experiments/landing/summary?primary=form_submit&guardrails=errors"
                                 "&secondary=cta_click&weights=A:0.5,B:0.5").get_json()
    assert summary["primary"]["verdict_code"] == "significant" and summary["primary"]["verdict_variant"] == "B"
    errors = summary["guardrails"][0]
    assert errors["metric"] == "errors" and errors["variants"][1]["significant"] and not errors["variants"][1]["better"]
    assert errors["breached"] is True  # what ab_service's guardrail.breached webhook reads
    recommendation = summary["recommendation"]
    assert recommendation["code"] == "guardrail" and recommendation["variant"] == "B"
    assert recommendation["blocking_guardrail"] == "errors" and recommendation["method"] == "msprt"
    assert "errors" in recommendation["sentence"] and "Do not ship" in recommendation["sentence"]
    assert [r["metric"] for r in summary["secondary"]] == ["cta_click"]


def test_without_a_worse_guardrail_the_winner_ships(metrics_client, admin):
    define(admin, {"key": "errors", "name": "Errors", "event_type": "js_error",
                                           "kind": "conversion", "direction": "decrease"}, event_types=("js_error",))
    load(metrics_client, guardrail_events("A", 3000, 300, 60) + guardrail_events("B", 3000, 480, 62))
    summary = metrics_client.get("/experiments/landing/summary?primary=form_submit&guardrails=errors").get_json()
    assert summary["recommendation"]["code"] == "ship" and summary["recommendation"]["variant"] == "B"
    assert summary["recommendation"]["blocking_guardrail"] is None
    unknown = metrics_client.get("/experiments/landing/summary?primary=form_submit&guardrails=nope")
    assert unknown.status_code == 400 and unknown.get_json()["errors"][0]["field"] == "guardrails"


def test_the_plan_matches_statsmodels_and_reads_the_daily_traffic(metrics_client, admin):
    load(metrics_client, events_for("A", 1000, 100) + events_for("B", 1000, 110))
    plan = metrics_client.get("/experiments/landing/plan?metric=form_submit&mde=0.1&power=0.8&alpha=0.05").get_json()
    expected = NormalIndPower().solve_power(proportion_effectsize(0.11, 0.1), power=0.8, alpha=0.05, ratio=1)
    assert plan["baseline"] == pytest.approx(0.1)
    assert plan["per_variant"] == pytest.approx(expected, rel=0.01) and plan["variants"] == 2
    assert plan["daily_source"] == "experiment" and plan["daily_visitors"] == pytest.approx(2000)
    assert plan["expected_days"] == pytest.approx(plan["per_variant"] / 1000)
    assert plan["saved"] is False
    define(admin, REVENUE, event_types=("order",))
    load(metrics_client, order_events("A", 200, random.Random(5), 3.0, prefix="m")[0])
    mean_plan = metrics_client.get("/experiments/landing/plan?metric=revenue&mde=0.2&baseline=20&std=30").get_json()
    assert mean_plan["per_variant"] == pytest.approx(TTestIndPower().solve_power(0.2 * 20 / 30, power=0.8,
                                                                                alpha=0.05), rel=0.01)
    assert metrics_client.get("/experiments/landing/plan?metric=form_submit&mde=0").status_code == 400


def test_a_saved_plan_makes_the_readout_group_sequential(metrics_client, admin):
    load(metrics_client, events_for("A", 1000, 100) + events_for("B", 1000, 150))
    plan = {"metric": "form_submit", "mde": 0.3}
    assert metrics_client.post("/experiments/landing/plan", json=plan).status_code == 401
    saved = admin.post("/experiments/landing/plan", json=plan)
    assert saved.status_code == 201 and saved.get_json()["saved"]
    body = metrics_client.get("/experiments/landing/results?metric=form_submit").get_json()
    assert body["method"] == "group_sequential" and "group-sequential" in body["verdict"]
    assert body["variants"][1]["information_fraction"] > 0
    looks = metrics_client.application.extensions["catalogue_store"].looks("landing", "form_submit")
    assert [len(v) for v in looks.values()] == [1]
    again = admin.post("/experiments/landing/plan", json={**plan, "mde": 0.1})
    assert again.status_code == 409  # the planned size is fixed once a look has spent alpha
    summary = metrics_client.get("/experiments/landing/summary?primary=form_submit").get_json()
    assert summary["recommendation"]["method"] == "group_sequential"
    assert "group-sequential" in summary["recommendation"]["sentence"]
