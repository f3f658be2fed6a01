"""The landing page evaluates experiments in process under gunicorn (two workers, each with its own
refresher): saved changes show within 2 s, a weight change moves no returning visitor, a tampered
cookie is ignored."""
import time

import pytest
import requests

from harness.processes import ADMIN_TOKEN, SECRET_KEY, start_stack, wait_for
from landing.sticky import COOKIE, StickyCookie
from tests.helpers import landing_variant_shown

pytestmark = pytest.mark.integration

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("evaluation"), with_dashboard=False)
    yield stack
    stack.stop()


def new_visitor(stack) -> tuple[requests.Session, str]:
    browser = requests.Session()
    page = browser.get(stack.landing.url + "/", timeout=10)
    assert page.status_code == 200
    return browser, page.text


def test_a_saved_change_shows_on_every_page_view_within_two_seconds(stack):
    requests.patch(f"{stack.ab.url}/flags/cta_text", json={"value": "Claim your seat"}, headers=HEADERS,
                   timeout=5).raise_for_status()
    saved = time.monotonic()
    wait_for(lambda: "Claim your seat" in new_visitor(stack)[1], timeout=5, interval=0.05)
    print(f"first page view with the change {time.monotonic() - saved:.2f} s after the save")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - saved)))
    pages = [new_visitor(stack)[1] for _ in range(30)]  # spread over both workers
    assert all("Claim your seat" in html for html in pages)


def test_a_weight_change_moves_no_returning_visitor(stack):
    visitors = [new_visitor(stack) for _ in range(150)]
    assert {landing_variant_shown(html) for _, html in visitors} == {"A", "B"}
    landing = requests.get(f"{stack.ab.url}/experiments/landing", timeout=5).json()
    variants = [{**v, "weight": w} for v, w in zip(landing["variants"], (0.02, 0.98), strict=True)]
    requests.patch(f"{stack.ab.url}/experiments/landing", json={"variants": variants}, headers=HEADERS,
                   timeout=5).raise_for_status()
    time.sleep(2.5)
    newcomers = [landing_variant_shown(new_visitor(stack)[1]) for _ in range(50)]
    assert newcomers.count("B") >= 40  # the new weights are in force
    moved = sum(browser.get(stack.landing.url + "/", timeout=10).text != html for browser, html in visitors)
    assert moved == 0


def test_a_tampered_cookie_is_ignored(stack):
    """A visitor who rewrites their assignment cookie (or signs one with a guessed secret) gets the
    variant the hash gives them, and a genuine cookie again."""
    for _ in range(20):
        browser, html = new_visitor(stack)
        genuine = browser.cookies[COOKIE]
        variant = StickyCookie(SECRET_KEY).loads(genuine)["landing"]
        other = {"A": "B", "B": "A"}[variant]
        forged = StickyCookie("a guessed secret").dumps({"landing": other})
        for bad in (forged, forged.rpartition(".")[0] + "." + genuine.rpartition(".")[2], genuine + "x"):
            page = requests.get(stack.landing.url + "/", cookies={"ll_vid": browser.cookies["ll_vid"], COOKIE: bad},
                                timeout=10)
            assert page.text == html
            assert StickyCookie(SECRET_KEY).loads(page.cookies[COOKIE]) == {"landing": variant}
