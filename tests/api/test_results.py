from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest


def events_for(variant, viewers, converters, metric="form_submit", prefix=None, experiment="landing", **extra):
    prefix = prefix or variant
    rows = [{"visitor_id": f"{prefix}{i}", "variant": variant, "event_type": "page_view",
             "experiment": experiment, **extra} for i in range(viewers)]
    rows += [{"visitor_id": f"{prefix}{i}", "variant": variant, "event_type": metric,
              "experiment": experiment, **extra} for i in range(converters)]
    return rows


def load(client, rows):
    for start in range(0, len(rows), 1000):
        response = client.post("/events", json=rows[start:start + 1000])
        assert response.status_code == 202, response.get_json()


def test_results_match_reference_statistics(metrics_client):
    load(metrics_client, events_for("A", 400, 40) + events_for("B", 420, 63))
    body = metrics_client.get("/experiments/landing/results?metric=form_submit").get_json()
    assert body["experiment"] == "landing" and body["metric"] == "form_submit" and body["control"] == "A"
    a, b = body["variants"]
    assert (a["variant"], a["visitors"], a["conversions"], a["rate"]) == ("A", 400, 40, 0.1)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(proportion_confint(40, 400, method="wilson"))
    assert a["uplift"] is None and a["p_value"] is None and a["chance_to_beat_control"] is None
    assert b["uplift"] == pytest.approx((63 / 420) / 0.1 - 1)
    assert b["p_value"] == pytest.approx(proportions_ztest([63, 40], [420, 400])[1])
    assert b["p_value_adjusted"] == pytest.approx(b["p_value"])
    assert 0.9 < b["chance_to_beat_control"] < 1
    assert b["p_value_sequential"] >= b["p_value"]
    assert body["srm"]["expected_weights"] == {"A": 0.5, "B": 0.5}
    assert body["srm"]["mismatch"] is False
    assert isinstance(body["verdict"], str) and body["verdict"]
    assert body["alpha"] == 0.05 and a["significant"] is None
    assert b["significant"] is (b["p_value_sequential"] < 0.05)
    assert body["verdict_code"] in ("significant", "no_difference")


def test_results_only_count_exposed_and_included_visitors(metrics_client):
    rows = events_for("A", 10, 5) + [{"visitor_id": "ghost", "variant": "A", "event_type": "form_submit"}]
    rows += events_for("A", 5, 5, prefix="qa", forced=True)
    rows += events_for("B", 10, 2) + events_for("B", 7, 7, prefix="out", in_experiment=False)
    load(metrics_client, rows)
    body = metrics_client.get("/experiments/landing/results?metric=form_submit").get_json()
    counts = {v["variant"]: (v["visitors"], v["conversions"]) for v in body["variants"]}
    assert counts == {"A": (10, 5), "B": (10, 2)}


def test_control_and_weights_parameters(metrics_client):
    load(metrics_client, events_for("A", 200, 20) + events_for("B", 300, 30) + events_for("C", 500, 60))
    body = metrics_client.get("/experiments/landing/results?metric=form_submit&control=B"
                              "&weights=A:0.2,B:0.3,C:0.5").get_json()
    assert body["control"] == "B"
    assert [v["variant"] for v in body["variants"]] == ["B", "A", "C"]
    assert body["srm"]["expected_weights"] == {"B": 0.3, "A": 0.2, "C": 0.5}
    assert body["srm"]["p_value"] == pytest.approx(1.0)
    unbalanced = metrics_client.get("/experiments/landing/results?metric=form_submit").get_json()
    assert unbalanced["srm"]["mismatch"] is True
    assert unbalanced["verdict"].startswith("Sample ratio mismatch")
    assert unbalanced["verdict_code"] == "sample_ratio_mismatch"


def test_a_winner_is_named_by_code_for_readers_that_write_their_own_words(metrics_client):
    load(metrics_client, events_for("A", 1500, 150) + events_for("B", 1500, 300))
    body = metrics_client.get("/experiments/landing/results?metric=form_submit").get_json()
    assert (body["verdict_code"], body["verdict_variant"]) == ("significant", "B")
    assert body["variants"][1]["significant"] is True


def test_no_data_is_zeros_not_an_error(metrics_client):
    body = metrics_client.get("/experiments/empty/results?metric=cta_click&weights=A:0.5,B:0.5").get_json()
    assert [(v["variant"], v["visitors"], v["conversions"], v["rate"]) for v in body["variants"]] == [
        ("A", 0, 0, None), ("B", 0, 0, None)]
    assert body["verdict"].startswith("Not enough data yet")
    assert body["verdict_code"] == "not_enough_data" and body["verdict_variant"] == "A"
    bare = metrics_client.get("/experiments/empty/results?metric=cta_click")
    assert bare.status_code == 200 and bare.get_json()["variants"] == []
    assert bare.get_json()["verdict_code"] is None


@pytest.mark.parametrize("query,field", [
    ("metric=purchase", "metric"),
    ("metric=page_view", "metric"),
    ("weights=A0.5,B0.5", "weights"),
    ("weights=A:0.5,B:0.6", "weights"),
    ("weights=A:x,B:0.5", "weights"),
    ("weights=A:0.5,A:0.5", "weights"),
    ("weights=A:1", "weights"),
    ("since=never", "since"),
    ("control=Z&weights=A:0.5,B:0.5", "control"),
])
def test_bad_parameters_are_named(metrics_client, query, field):
    response = metrics_client.get(f"/experiments/landing/results?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == field


def at(hours_ago):
    return (datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=hours_ago)).isoformat()


def test_event_timeseries_per_hour_and_day(metrics_client):
    load(metrics_client, [
        {"visitor_id": "v1", "variant": "A", "event_type": "page_view", "timestamp": at(3)},
        {"visitor_id": "v1", "variant": "A", "event_type": "page_view", "timestamp": at(3)},
        {"visitor_id": "v2", "variant": "B", "event_type": "page_view", "timestamp": at(3)},
        {"visitor_id": "v1", "variant": "A", "event_type": "cta_click", "timestamp": at(1)},
    ])
    hourly = metrics_client.get("/stats/timeseries?experiment=landing&interval=hour").get_json()
    assert hourly["interval"] == "hour"
    assert [(p["variant"], p["events"], p["visitors"]) for p in hourly["series"]] == [
        ("A", 2, 1), ("B", 1, 1), ("A", 1, 1)]
    assert hourly["series"][0]["bucket"].endswith(":00:00Z")
    clicks = metrics_client.get("/stats/timeseries?event_type=cta_click").get_json()
    assert [p["events"] for p in clicks["series"]] == [1]
    assert metrics_client.get("/stats/timeseries?interval=week").status_code == 400


def test_cumulative_conversion_over_time(metrics_client):
    load(metrics_client, [
        {"visitor_id": "v1", "variant": "A", "event_type": "page_view", "timestamp": at(3)},
        {"visitor_id": "v2", "variant": "A", "event_type": "page_view", "timestamp": at(2)},
        {"visitor_id": "v1", "variant": "A", "event_type": "cta_click", "timestamp": at(1)},
    ])
    body = metrics_client.get("/experiments/landing/timeseries?metric=cta_click&interval=hour").get_json()
    # visitors enter with their first event's hour; v1 converted later, but counts in its cohort
    assert [(p["visitors"], p["conversions"], p["rate"]) for p in body["series"]] == [(1, 1, 1.0), (2, 1, 0.5)]
    daily = metrics_client.get("/experiments/landing/timeseries?metric=cta_click&interval=day").get_json()
    assert daily["series"][-1] == {**daily["series"][-1], "visitors": 2, "conversions": 1, "rate": 0.5}


def test_funnel_per_variant(metrics_client):
    rows = events_for("A", 10, 6, metric="cta_click")
    rows += [{"visitor_id": f"A{i}", "variant": "A", "event_type": "form_submit"} for i in range(3)]
    rows += [{"visitor_id": "A9", "variant": "A", "event_type": "form_submit"}]  # skipped the click
    load(metrics_client, rows)
    body = metrics_client.get("/stats/funnel?experiment=landing").get_json()
    assert body["steps"] == ["page_view", "cta_click", "form_submit"]
    [variant] = body["variants"]
    steps = {s["step"]: s for s in variant["steps"]}
    assert steps["page_view"]["visitors"] == 10 and steps["page_view"]["conversion_from_previous"] is None
    assert steps["cta_click"]["visitors"] == 6 and steps["cta_click"]["conversion_from_previous"] == 0.6
    assert steps["form_submit"]["visitors"] == 3 and steps["form_submit"]["conversion_from_previous"] == 0.5
    assert steps["form_submit"]["conversion_from_start"] == 0.3
