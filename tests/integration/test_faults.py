"""Outages with real processes: no event lost or counted twice, no visitor flipped."""
import time

import pytest
import requests

from harness.processes import ADMIN_TOKEN, start_stack, wait_for
from tests.helpers import landing_variant_shown

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path):
    stack = start_stack(tmp_path, with_dashboard=False, OUTBOX_MAX_BACKOFF_SECONDS="1")
    yield stack
    stack.stop()


class Visitors:
    """Browsers that each load the page and click; counts every event the landing page accepted."""

    def __init__(self, landing_url):
        self.url = landing_url
        self.sent = 0
        self.sessions = []

    def visit(self, count):
        for _ in range(count):
            browser = requests.Session()
            assert browser.get(self.url + "/", timeout=10).status_code == 200
            assert browser.post(self.url + "/track", json={"event_type": "cta_click"}, timeout=10).status_code == 202
            self.sessions.append(browser)
            self.sent += 2


def stored(stack):
    body = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing"}, timeout=10).json()
    return body["total_events"]


def test_metrics_outage_loses_and_duplicates_nothing(stack):
    visitors = Visitors(stack.landing.url)
    visitors.visit(20)
    stack.metrics.stop()
    visitors.visit(30)  # metrics_service is down: the landing page keeps answering
    time.sleep(3)
    visitors.visit(10)
    stack.metrics.start()
    visitors.visit(20)
    wait_for(lambda: stored(stack) >= visitors.sent, timeout=30)
    time.sleep(1.5)  # anything re-sent after the count was reached would show up now
    assert stored(stack) == visitors.sent == 160


def test_landing_restart_keeps_queued_events(stack):
    visitors = Visitors(stack.landing.url)
    stack.metrics.stop()
    visitors.visit(25)  # queued in the landing service's outbox
    stack.landing.stop()  # SIGTERM while events are still undelivered
    stack.landing.start()
    visitors.visit(15)
    stack.metrics.start()
    wait_for(lambda: stored(stack) >= visitors.sent, timeout=30)
    time.sleep(1.5)
    assert stored(stack) == visitors.sent == 80


def test_ab_service_outage_changes_nothing_a_visitor_sees(stack):
    """Returning visitors see exactly the page they saw, word for word, while ab_service is down: from
    the landing service that knew them, and from one started during the outage (their cookie carries
    their variants; the flags and experiments it last fetched are kept in its database). Before the
    outage the weights, a flag and a second experiment changed, so the built-in defaults would differ."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    landing = requests.get(f"{stack.ab.url}/experiments/landing", timeout=5).json()
    variants = [{**v, "weight": w} for v, w in zip(landing["variants"], (0.3, 0.7), strict=True)]
    requests.patch(f"{stack.ab.url}/experiments/landing", json={"variants": variants}, headers=headers,
                   timeout=5).raise_for_status()
    requests.post(f"{stack.ab.url}/config", json={"cta_text": "Start your trial"}, headers=headers,
                  timeout=5).raise_for_status()
    requests.post(f"{stack.ab.url}/experiments", headers=headers, timeout=5, json={
        "key": "promo_depth", "status": "running",
        "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                     {"name": "B", "weight": 0.5, "overrides": {"promo_discount_percent": 45}}]}).raise_for_status()
    # both landing workers' refreshers have fetched the changes (each new visitor lands on either)
    wait_for(lambda: all("Start your trial" in requests.get(stack.landing.url + "/", timeout=10).text
                         for _ in range(20)), timeout=10)
    sessions = []
    for _ in range(160):
        browser = requests.Session()
        page = browser.get(stack.landing.url + "/", timeout=10)
        assert page.status_code == 200
        sessions.append((browser, page.text))
    assert all("Start your trial" in html for _, html in sessions)
    assert {"45% off" in html for _, html in sessions} == {True, False}
    assert {landing_variant_shown(html) for _, html in sessions} == {"A", "B"}
    stack.ab.stop()
    flips = sum(browser.get(stack.landing.url + "/", timeout=10).text != html for browser, html in sessions)
    assert flips == 0
    stack.landing.stop()
    stack.landing.start()  # never saw these visitors, and cannot reach ab_service
    flips = sum(browser.get(stack.landing.url + "/", timeout=10).text != html for browser, html in sessions)
    assert flips == 0
