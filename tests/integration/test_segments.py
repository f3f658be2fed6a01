"""Traffic with a known mix of User-Agents, campaigns, referrers and addresses through the landing page
(gunicorn, as in production): exactly those counts per segment in results and traffic reports, and
nothing that identifies a person in any table of any service's database."""
import sqlite3
from collections import Counter

import pytest
import requests

from harness.processes import start_stack, wait_for
from tests.helpers import country_database, landing_variant_shown
from tests.unit.test_context import ANDROID_TABLET, CHROME_WINDOWS, SAFARI_IPHONE

pytestmark = pytest.mark.integration

HOSTILE_UA = ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0 "
              "<script>alert('x')</script> 203.0.113.99 someone@example.com")
EMAIL = "person.who.signs.up@example.com"
# (User-Agent, query, referrer, address, visitors, of whom sign up)
GROUPS = [
    (CHROME_WINDOWS, {"utm_source": "Google", "utm_medium": "CPC", "utm_campaign": "Spring_Sale"}, None,
     "198.51.100.10", 6, 3),
    (SAFARI_IPHONE, {"utm_source": " newsletter "}, "https://news.example.org/issue/42?u=secret-reader",
     "203.0.113.7", 4, 2),
    (ANDROID_TABLET, {}, None, "192.0.2.1", 3, 1),
    (HOSTILE_UA, {"utm_source": "https://evil.example/steal?x=1", "utm_campaign": "someone@example.com",
                  "utm_medium": "<b>x</b>"},
     "https://user:pw@203.0.113.50/private/path?token=abc", "203.0.113.99", 2, 1),
]
DEVICE = {CHROME_WINDOWS: "desktop", SAFARI_IPHONE: "mobile", ANDROID_TABLET: "tablet", HOSTILE_UA: "desktop"}
NEVER_STORED = [CHROME_WINDOWS, SAFARI_IPHONE, ANDROID_TABLET, HOSTILE_UA, "198.51.100.10", "203.0.113.7",
                "192.0.2.1", "203.0.113.50", "203.0.113.99", "127.0.0.1", "http://", "https://", "/issue/42",
                "secret-reader", "/private/path", "token=abc", "user:pw", "evil.example", "someone@example.com",
                EMAIL, "<script>", "Spring_Sale"]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("segments")
    geo = country_database(data_dir / "countries.mmdb", {"198.51.100.0/24": "DE", "203.0.113.0/24": "FR"})
    stack = start_stack(data_dir, with_dashboard=False, GEOIP_DATABASE=str(geo), TRUSTED_PROXY_HOPS="1")
    seen = []  # (group index, variant, signed up)
    try:
        for index, (ua, query, referrer, address, count, signing_up) in enumerate(GROUPS):
            for n in range(count):
                browser = requests.Session()
                browser.headers.update({"User-Agent": ua, "X-Forwarded-For": address,
                                        **({"Referer": referrer} if referrer else {})})
                page = browser.get(stack.landing.url + "/", params=query, timeout=10)
                assert page.status_code == 200
                signed_up = n < signing_up
                if signed_up:
                    response = browser.post(stack.landing.url + "/signup", json={"email": EMAIL}, timeout=10)
                    assert response.status_code == 202
                seen.append((index, landing_variant_shown(page.text), signed_up))

        def delivered():
            body = requests.get(f"{stack.metrics.url}/stats/traffic", params={"dimension": "device"}, timeout=5).json()
            return body["total_visitors"] == len(seen) and body["values"]

        wait_for(delivered, timeout=30)
        yield stack, seen
    finally:
        stack.stop()


def expected(seen, key) -> dict:
    """{segment value: (visitors, conversions)} from what was sent."""
    visitors, conversions = Counter(), Counter()
    for index, variant, signed_up in seen:
        value = key(GROUPS[index], variant)
        visitors[value] += 1
        conversions[value] += signed_up
    return {value: (visitors[value], conversions[value]) for value in visitors}


def traffic_report(stack, dimension) -> dict:
    body = requests.get(f"{stack.metrics.url}/stats/traffic", params={"dimension": dimension}, timeout=5).json()
    return {v["value"]: (v["visitors"], v["conversions"]) for v in body["values"]}


def test_results_per_device_count_exactly_the_visitors_sent(traffic):
    stack, seen = traffic
    body = requests.get(f"{stack.metrics.url}/experiments/landing/results", params={"dimension": "device"},
                        timeout=5).json()
    assert body["adjustment"] == "benjamini-hochberg"
    reported = {(s["value"], v["variant"]): (v["visitors"], v["conversions"])
                for s in body["segments"] for v in s["variants"] if v["visitors"]}
    assert reported == expected(seen, lambda group, variant: (DEVICE[group[0]], variant))
    assert all(not s["judged"] for s in body["segments"])  # a few visitors: nothing judged


def test_the_segment_filter_gives_the_same_counts(traffic):
    stack, seen = traffic
    body = requests.get(f"{stack.metrics.url}/experiments/landing/results", params={"segment": "utm_source:google"},
                        timeout=5).json()
    reported = {v["variant"]: (v["visitors"], v["conversions"]) for v in body["variants"] if v["visitors"]}
    assert reported == expected([s for s in seen if s[0] == 0], lambda group, variant: variant)


def test_traffic_reports_count_exactly_the_visitors_sent(traffic):
    stack, seen = traffic
    assert traffic_report(stack, "utm_source") == expected(seen, lambda group, _: {0: "google", 1: "newsletter"}.get(
        GROUPS.index(group), "(none)"))
    assert traffic_report(stack, "utm_campaign") == expected(seen, lambda group, _: "spring_sale" if group[1].get(
        "utm_campaign") == "Spring_Sale" else "(none)")
    assert traffic_report(stack, "referrer_host") == expected(seen, lambda group, _: "news.example.org" if group[0]
                                                               == SAFARI_IPHONE else "(none)")
    assert traffic_report(stack, "country") == expected(seen, lambda group, _: {"198": "DE", "203": "FR"}.get(
        group[3][:3], "(none)"))
    assert traffic_report(stack, "browser") == expected(seen, lambda group, _: {
        SAFARI_IPHONE: "Mobile Safari", HOSTILE_UA: "Firefox"}.get(group[0], "Chrome"))
    assert traffic_report(stack, "path") == {"/": (len(seen), sum(s[2] for s in seen))}


def test_no_table_of_any_service_holds_an_address_a_user_agent_a_url_or_an_email(traffic):
    stack, _ = traffic
    databases = sorted(stack.data_dir.glob("*.db"))
    assert {db.name for db in databases} >= {"landing.db", "metrics_service.db", "ab_service.db"}
    found, kept = [], set()
    for path in databases:
        with sqlite3.connect(path) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    text = " ".join(str(value) for value in row)
                    found += [(path.name, table, needle) for needle in NEVER_STORED if needle in text]
                    if "news.example.org" in text:
                        kept.add((path.name, table))
    assert found == []
    assert ("metrics_service.db", "event_context") in kept  # the host alone is kept, and the scan sees it


def test_stats_count_the_events_of_a_segments_visitors(traffic):
    stack, seen = traffic
    mobile = [s for s in seen if DEVICE[GROUPS[s[0]][0]] == "mobile"]
    body = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing", "segment": "device:mobile"},
                        timeout=5).json()
    assert body["unique_visitors"] == len(mobile)
    assert body["by_event_type"]["page_view"] == {"events": len(mobile), "visitors": len(mobile)}
    signed_up = sum(s[2] for s in mobile)
    assert body["by_event_type"]["form_submit"] == {"events": signed_up, "visitors": signed_up}
    series = requests.get(f"{stack.metrics.url}/stats/timeseries",
                          params={"experiment": "landing", "segment": "device:mobile", "interval": "day"},
                          timeout=5).json()["series"]
    assert sum(p["events"] for p in series) == body["total_events"]
