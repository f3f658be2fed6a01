"""Outages with real processes: no event lost or counted twice, no visitor flipped."""
import re
import time

import pytest
import requests

from harness.processes import start_stack, wait_for

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


def test_ab_service_outage_flips_no_visitor(stack):
    sessions = []
    for _ in range(150):
        browser = requests.Session()
        page = browser.get(stack.landing.url + "/", timeout=10)
        sessions.append((browser, re.search(r'data-variant="(\w+)"', page.text).group(1)))
    stack.ab.stop()
    flips = 0
    for browser, variant in sessions:
        page = browser.get(stack.landing.url + "/", timeout=10)
        assert page.status_code == 200
        flips += re.search(r'data-variant="(\w+)"', page.text).group(1) != variant
    assert flips == 0
    # a landing process that never saw these visitors recomputes the same variants with the shared hash
    stack.landing.stop()
    stack.landing.start()
    for browser, variant in sessions:
        page = browser.get(stack.landing.url + "/", timeout=10)
        assert page.status_code == 200
        flips += re.search(r'data-variant="(\w+)"', page.text).group(1) != variant
    assert flips == 0
    assert {v for _, v in sessions} == {"A", "B"}
