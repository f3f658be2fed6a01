"""The whole loop with real processes: visitor -> variant -> events -> stats, and a toggle flip."""
import re

import pytest
import requests

from core.bucketing import assign_variant
from harness.processes import ADMIN_TOKEN, start_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    stack.stop()


def test_all_four_services_are_healthy(stack):
    for service in stack.all():
        assert requests.get(service.url + service.health_path, timeout=5).status_code == 200
    assert requests.get(stack.dashboard.url, timeout=5).status_code == 200


def test_visitor_journey_is_counted(stack):
    visitors = []
    for _ in range(6):
        browser = requests.Session()
        page = browser.get(stack.landing.url + "/", timeout=5)
        assert page.status_code == 200
        variant = re.search(r'data-variant="([AB])"', page.text).group(1)
        visitor_id = browser.cookies["ll_vid"]
        assert variant == assign_variant(visitor_id, ["A", "B"], seed="landing")
        assigned = requests.get(f"{stack.ab.url}/assign", params={"visitor_id": visitor_id}, timeout=5).json()
        assert assigned["variant"] == variant
        reload = browser.get(stack.landing.url + "/", timeout=5).text
        assert re.search(r'data-variant="([AB])"', reload).group(1) == variant
        click = browser.post(stack.landing.url + "/track", json={"event_type": "cta_click"}, timeout=5)
        assert click.status_code == 202
        signup = browser.post(stack.landing.url + "/signup", json={"email": "a@example.com"}, timeout=5)
        assert signup.status_code == 202
        visitors.append((visitor_id, variant))

    def stats():
        body = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing"}, timeout=5).json()
        return body if body["total_events"] >= 24 else None

    body = wait_for(stats)
    assert body["total_events"] == 24
    assert body["unique_visitors"] == 6
    assert body["by_event_type"]["page_view"] == {"events": 12, "visitors": 6}
    per_variant = {v: sum(1 for _, var in visitors if var == v) for v in ("A", "B")}
    for variant, count in per_variant.items():
        if count:
            assert body["conversion"][variant]["visitors"] == count
            assert body["conversion"][variant]["form_submit"]["rate"] == 1.0


def test_admin_toggle_reaches_the_page(stack):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert requests.post(f"{stack.ab.url}/config", json={"cta_text": "x"}, timeout=5).status_code == 401
    response = requests.post(
        f"{stack.ab.url}/config", json={"show_testimonials": False, "cta_text": "Start free"},
        headers=headers, timeout=5,
    )
    assert response.status_code == 200

    def page_updated():
        html = requests.get(stack.landing.url + "/", timeout=5).text
        return 'id="testimonials"' not in html and "Start free" in html

    wait_for(page_updated, timeout=5)
    requests.post(f"{stack.ab.url}/config", json={"show_testimonials": True, "cta_text": "Get started"},
                  headers=headers, timeout=5)
