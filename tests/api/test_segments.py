"""Segment breakdowns over the API: results per dimension, the segment filter, traffic reports, folding."""
from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from tests.helpers import INGEST_KEY, flask_app


def visitors(variant, count, converted, context, prefix, experiment="landing"):
    """count exposed visitors with this context, the first `converted` of them signing up."""
    rows = [{"visitor_id": f"{prefix}{i}", "variant": variant, "event_type": "page_view", "experiment": experiment,
             "context": context} for i in range(count)]
    rows += [{"visitor_id": f"{prefix}{i}", "variant": variant, "event_type": "form_submit",
              "experiment": experiment} for i in range(converted)]
    return rows


MOBILE_GOOGLE = {"device": "mobile", "browser": "Chrome Mobile", "os": "Android", "utm_source": "google",
                 "utm_medium": "cpc", "path": "/"}
DESKTOP_DIRECT = {"device": "desktop", "browser": "Firefox", "os": "Linux", "path": "/"}
TABLET_NEWS = {"device": "tablet", "browser": "Mobile Safari", "os": "iOS", "utm_source": "newsletter",
               "referrer_host": "news.example.org", "path": "/"}


def load(client, rows):
    for start in range(0, len(rows), 1000):
        response = client.post("/events", json=rows[start:start + 1000])
        assert response.status_code == 202, response.get_json()


@pytest.fixture
def loaded(metrics_client):
    load(metrics_client, visitors("A", 400, 40, MOBILE_GOOGLE, "am") + visitors("B", 400, 70, MOBILE_GOOGLE, "bm")
         + visitors("A", 300, 45, DESKTOP_DIRECT, "ad") + visitors("B", 310, 44, DESKTOP_DIRECT, "bd")
         + visitors("A", 30, 3, TABLET_NEWS, "at") + visitors("B", 20, 2, TABLET_NEWS, "bt")
         # no context (sent by some other producer): in the results, in no segment
         + [{"visitor_id": "plain", "variant": "A", "event_type": "page_view"}])
    return metrics_client


def test_results_by_device_are_adjusted_across_segments(loaded):
    body = loaded.get("/experiments/landing/results?dimension=device").get_json()
    assert body["dimension"] == "device" and body["adjustment"] == "benjamini-hochberg" and body["control"] == "A"
    assert "exploratory" in body["caution"]
    assert (body["min_visitors"], body["min_conversions"]) == (100, 25)
    segments = {s["value"]: s for s in body["segments"]}
    assert [s["value"] for s in body["segments"]] == ["mobile", "desktop", "tablet"]
    counts = {value: [(v["variant"], v["visitors"], v["conversions"]) for v in s["variants"]]
              for value, s in segments.items()}
    assert counts == {"mobile": [("A", 400, 40), ("B", 400, 70)], "desktop": [("A", 300, 45), ("B", 310, 44)],
                      "tablet": [("A", 30, 3), ("B", 20, 2)]}
    raw = [proportions_ztest([70, 40], [400, 400])[1], proportions_ztest([44, 45], [310, 300])[1]]
    mobile, desktop = segments["mobile"]["variants"][1], segments["desktop"]["variants"][1]
    assert [mobile["p_value"], desktop["p_value"]] == pytest.approx(raw)
    assert [mobile["p_value_adjusted"], desktop["p_value_adjusted"]] == pytest.approx(
        multipletests(raw, method="fdr_bh")[1])
    assert mobile["uplift"] == pytest.approx(0.75) and mobile["uplift_ci_low"] < 0.75 < mobile["uplift_ci_high"]
    assert segments["tablet"]["judged"] is False and segments["tablet"]["variants"][1]["p_value_adjusted"] is None
    assert segments["mobile"]["judged"] is True and (segments["mobile"]["visitors"], segments["mobile"]["conversions"]
                                                     ) == (800, 110)
    sources = loaded.get("/experiments/landing/results?dimension=utm_source").get_json()["segments"]
    assert {s["value"]: s["visitors"] for s in sources} == {"google": 800, "(none)": 610, "newsletter": 50}


def test_the_segment_filter_restricts_results_timeseries_and_funnel(loaded):
    body = loaded.get("/experiments/landing/results?segment=utm_source:google").get_json()
    assert [(v["variant"], v["visitors"], v["conversions"]) for v in body["variants"]] == [("A", 400, 40),
                                                                                       ("B", 400, 70)]
    whole = loaded.get("/experiments/landing/results").get_json()
    assert [v["visitors"] for v in whole["variants"]] == [731, 730]
    series = loaded.get("/experiments/landing/timeseries?segment=device:tablet&interval=day").get_json()["series"]
    assert {(p["variant"], p["visitors"], p["conversions"]) for p in series} == {("A", 30, 3), ("B", 20, 2)}
    funnel = loaded.get("/stats/funnel?experiment=landing&segment=referrer_host:news.example.org").get_json()
    assert {v["variant"]: v["steps"][0]["visitors"] for v in funnel["variants"]} == {"A": 30, "B": 20}
    empty = loaded.get("/experiments/landing/results?segment=utm_source:nowhere").get_json()
    assert empty["variants"] == [] and empty["verdict_code"] is None


def test_stats_count_the_events_and_visitors_of_a_segment(loaded):
    body = loaded.get("/stats?experiment=landing&segment=utm_source:google").get_json()
    assert (body["total_events"], body["unique_visitors"]) == (400 + 40 + 400 + 70, 800)
    assert body["by_variant"] == {"A": {"events": 440, "visitors": 400}, "B": {"events": 470, "visitors": 400}}
    assert body["by_event_type"] == {"page_view": {"events": 800, "visitors": 800},
                                     "form_submit": {"events": 110, "visitors": 110}}
    assert {(c["variant"], c["event_type"]): (c["events"], c["visitors"]) for c in body["matrix"]} == {
        ("A", "page_view"): (400, 400), ("A", "form_submit"): (40, 40),
        ("B", "page_view"): (400, 400), ("B", "form_submit"): (70, 70)}
    assert body["conversion"]["B"]["visitors"] == 400 and body["conversion"]["B"]["form_submit"] == {
        "visitors": 70, "rate": 70 / 400}
    assert body["filters"]["segment"] == "utm_source:google"
    # direct traffic: (none); the visitor sent without a context is in no segment
    direct = loaded.get("/stats?segment=utm_source:(none)&variant=A").get_json()
    assert (direct["total_events"], direct["unique_visitors"]) == (345, 300)
    whole = loaded.get("/stats?variant=A").get_json()
    assert (whole["total_events"], whole["unique_visitors"]) == (400 + 40 + 300 + 45 + 30 + 3 + 1, 731)
    tablet = loaded.get("/stats?segment=device:tablet&event_type=form_submit").get_json()
    assert (tablet["total_events"], tablet["unique_visitors"]) == (5, 5)
    assert loaded.get("/stats?segment=device:watch").get_json()["total_events"] == 0


def test_a_visitors_events_follow_their_earliest_exposure_whatever_the_arrival_order(metrics_client):
    """A click that arrives before any exposure joins the segment of the exposure that arrives later;
    an earlier exposure arriving last moves every event of the visitor, in /stats and its timeseries."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)

    def at(minutes, visitor, variant, event_type, context=None):
        event = {"visitor_id": visitor, "variant": variant, "event_type": event_type,
                 "timestamp": (start + timedelta(minutes=minutes)).isoformat()}
        return event | ({"context": context} if context else {})

    def series(segment):
        body = metrics_client.get(f"/stats/timeseries?experiment=landing&interval=hour&segment={segment}").get_json()
        return [(p["bucket"], p["variant"], p["events"], p["visitors"]) for p in body["series"]]

    hour = [(start + timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in range(3)]
    load(metrics_client, [at(150, "m1", "A", "cta_click")])
    assert series("device:mobile") == []  # no context yet: in no segment
    load(metrics_client, [at(70, "m1", "A", "page_view", {"device": "mobile"}), at(5, "d2", "B", "page_view",
                                                                                   {"device": "desktop"})])
    assert series("device:mobile") == [(hour[1], "A", 1, 1), (hour[2], "A", 1, 1)]
    load(metrics_client, [at(5, "m1", "A", "page_view", {"device": "desktop"}),
                          at(10, "m1", "A", "form_submit")])
    assert series("device:mobile") == []
    assert series("device:desktop") == [(hour[0], "A", 2, 1), (hour[0], "B", 1, 1), (hour[1], "A", 1, 1),
                                        (hour[2], "A", 1, 1)]
    desktop = metrics_client.get("/stats?segment=device:desktop").get_json()
    assert (desktop["total_events"], desktop["unique_visitors"]) == (5, 2)
    assert desktop["by_variant"] == {"A": {"events": 4, "visitors": 1}, "B": {"events": 1, "visitors": 1}}
    mobile = metrics_client.get("/stats?segment=device:mobile").get_json()
    assert (mobile["total_events"], mobile["unique_visitors"], mobile["matrix"]) == (0, 0, [])
    daily = metrics_client.get("/stats/timeseries?interval=day&segment=device:desktop&variant=A").get_json()
    assert sum(p["events"] for p in daily["series"]) == 4


@pytest.mark.parametrize("path", ["/stats", "/stats/timeseries", "/stats/funnel"])
@pytest.mark.parametrize("segment", ["device", "colour:red", "device:" + "x" * 65])
def test_event_reports_refuse_a_malformed_segment(metrics_client, path, segment):
    response = metrics_client.get(f"{path}?experiment=landing&segment={segment}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "segment"


@pytest.mark.parametrize("query", ["segment=device", "segment=colour:red", "segment=device:" + "x" * 65,
                                   "dimension=colour", "dimension=device&segment=device:mobile"])
def test_malformed_breakdowns_are_refused(metrics_client, query):
    response = metrics_client.get(f"/experiments/landing/results?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"]


def test_traffic_report_per_dimension(loaded):
    body = loaded.get("/stats/traffic?dimension=utm_source").get_json()
    assert (body["dimension"], body["metric"], body["experiment"], body["total_visitors"]) == (
        "utm_source", "form_submit", None, 1460)
    assert body["values"] == [
        {"value": "google", "visitors": 800, "conversions": 110, "rate": 110 / 800},
        {"value": "(none)", "visitors": 610, "conversions": 89, "rate": 89 / 610},
        {"value": "newsletter", "visitors": 50, "conversions": 5, "rate": 0.1}]
    top = loaded.get("/stats/traffic?dimension=device&top=1&experiment=landing").get_json()
    assert [v["value"] for v in top["values"]] == ["mobile"] and top["more_values"] == 2
    assert loaded.get("/stats/traffic?dimension=os&experiment=other").get_json()["values"] == []
    assert loaded.get("/stats/traffic?dimension=device&until=2000-01-01").get_json()["total_visitors"] == 0
    assert loaded.get("/stats/traffic").status_code == 400
    assert loaded.get("/stats/traffic?dimension=device&top=0").status_code == 400


def test_traffic_counts_a_visitor_once_across_experiments(metrics_client):
    load(metrics_client, visitors("A", 5, 1, MOBILE_GOOGLE, "v", experiment="hero")
         + visitors("B", 5, 1, MOBILE_GOOGLE, "v", experiment="pricing"))
    assert metrics_client.get("/stats/traffic?dimension=device").get_json()["values"] == [
        {"value": "mobile", "visitors": 5, "conversions": 1, "rate": 0.2}]
    assert metrics_client.get("/stats/traffic?dimension=device&experiment=hero").get_json()["total_visitors"] == 5


def test_context_is_accepted_on_exposures_only(metrics_client):
    refused = metrics_client.post("/events", json={"visitor_id": "v", "variant": "A", "event_type": "cta_click",
                                                   "context": {"device": "mobile"}})
    assert refused.status_code == 400
    for context in ({"device": "m" * 65}, {"ip": "203.0.113.9"}, {"device": None}, {"path": "/\x01"}):
        response = metrics_client.post("/events", json={"visitor_id": "v", "variant": "A",
                                                        "event_type": "page_view", "context": context})
        assert response.status_code == 400, context


def test_each_dimension_keeps_at_most_the_configured_number_of_values(tmp_path):
    with flask_app("metrics_service", DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}", INGEST_KEY=INGEST_KEY,
                   SEGMENT_VALUES="2") as app:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {INGEST_KEY}"
        for i, campaign in enumerate(["spring", "summer", "autumn", "winter", "spring"]):
            load(client, visitors("A", 2, 0, {"utm_campaign": campaign, "device": "mobile"}, f"c{i}-"))
        values = client.get("/stats/traffic?dimension=utm_campaign").get_json()["values"]
        assert {v["value"]: v["visitors"] for v in values} == {"spring": 4, "summer": 2, "(other)": 4}
        assert client.get("/stats/traffic?dimension=device").get_json()["values"][0]["visitors"] == 10
