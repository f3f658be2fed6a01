"""The whole loop with real processes: visitor -> variant -> events -> stats, and a toggle flip."""
import sqlite3
from collections import Counter

import pytest
import requests

from core.bucketing import assign_variant
from harness.processes import ADMIN_TOKEN, SECRET_KEY, start_stack, wait_for
from landing.sticky import COOKIE, StickyCookie
from tests.helpers import landing_variant_shown

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


def landing_outbox(stack, destination: str) -> int:
    """Rows the landing service still has to deliver to one receiver."""
    with sqlite3.connect(stack.data_dir / "landing.db") as db:
        return db.execute("SELECT count(*) FROM outbox WHERE destination = ?", (destination,)).fetchone()[0]


def test_visitor_journey_is_counted(stack):
    visitors = []
    for _ in range(6):
        browser = requests.Session()
        page = browser.get(stack.landing.url + "/", timeout=5)
        assert page.status_code == 200
        variant = landing_variant_shown(page.text)
        visitor_id = browser.cookies["ll_vid"]
        assert StickyCookie(SECRET_KEY).loads(browser.cookies[COOKIE]) == {"landing": variant}
        assert variant == assign_variant(visitor_id, ["A", "B"], seed="landing")
        reload = browser.get(stack.landing.url + "/", timeout=5).text
        assert landing_variant_shown(reload) == variant
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


def test_every_experiment_reaches_the_page_and_is_measured(stack):
    """A second experiment with three variants runs beside the built-in one: each visitor sees the
    overrides of both, each experiment's results count its own exposures and conversions, and
    ab_service's /assign names what the page showed even after the weights change."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    cta = {"A": "Get started", "B": "Start free", "C": "Book a demo"}
    experiment = {"key": "cta_copy", "status": "running", "variants": [
        {"name": "A", "weight": 0.34, "overrides": {}},
        {"name": "B", "weight": 0.33, "overrides": {"cta_text": cta["B"]}},
        {"name": "C", "weight": 0.33, "overrides": {"cta_text": cta["C"], "show_testimonials": False}}]}
    requests.post(f"{stack.ab.url}/experiments", json=experiment, headers=headers, timeout=5).raise_for_status()
    crawler = {"User-Agent": "Googlebot/2.1"}  # its page views are left out of the results
    wait_for(lambda: all("cta_copy" in StickyCookie(SECRET_KEY).loads(
        requests.get(stack.landing.url + "/", headers=crawler, timeout=5).cookies.get(COOKIE))
        for _ in range(10)), timeout=10)
    before = {key: arms(stack, key) for key in ("landing", "cta_copy")}
    seen = []
    for _ in range(60):
        browser = requests.Session()
        html = browser.get(stack.landing.url + "/", timeout=5).text
        shown = StickyCookie(SECRET_KEY).loads(browser.cookies[COOKIE])
        assert set(shown) == {"landing", "cta_copy"}
        assert landing_variant_shown(html) == shown["landing"]
        assert f'href="#signup">{cta[shown["cta_copy"]]}</a>' in html
        assert ('id="testimonials"' in html) == (shown["cta_copy"] != "C")
        assert browser.post(stack.landing.url + "/track", json={"event_type": "cta_click"}, timeout=5).status_code \
            == 202
        seen.append((browser.cookies["ll_vid"], shown))
    assert {shown["cta_copy"] for _, shown in seen} == {"A", "B", "C"}

    wait_for(lambda: landing_outbox(stack, "assignments") == 0 and landing_outbox(stack, "events") == 0, timeout=20)
    variants = [{**v, "weight": w} for v, w in zip(experiment["variants"], (0.9, 0.05, 0.05), strict=True)]
    requests.patch(f"{stack.ab.url}/experiments/cta_copy", json={"variants": variants}, headers=headers,
                   timeout=5).raise_for_status()
    for visitor_id, shown in seen:
        for key, variant in shown.items():
            assigned = requests.get(f"{stack.ab.url}/assign", params={"visitor_id": visitor_id, "experiment": key},
                                    timeout=5).json()
            assert assigned["variant"] == variant, (visitor_id, key)

    for key in ("landing", "cta_copy"):
        exposed = Counter(shown[key] for _, shown in seen)
        after = arms(stack, key)
        added = {v: tuple(a - b for a, b in zip(after[v], before[key].get(v, (0, 0)), strict=True))
                 for v in after if after[v] != before[key].get(v)}
        assert added == {v: (n, n) for v, n in exposed.items()}  # every visitor exposed, every one clicked


def arms(stack, experiment: str) -> dict[str, tuple[int, int]]:
    """{variant: (exposed visitors, visitors who clicked)} from the experiment's results."""
    results = requests.get(f"{stack.metrics.url}/experiments/{experiment}/results", params={"metric": "cta_click"},
                           timeout=5).json()
    return {arm["variant"]: (arm["visitors"], arm["conversions"]) for arm in results["variants"]}


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
