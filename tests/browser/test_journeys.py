"""The product as its three users meet it, in real Chromium."""

import http.server
import threading
import time

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.text import plain
from harness.processes import ADMIN_TOKEN, SECRET_KEY, wait_for
from landing.sticky import COOKIE, StickyCookie
from tests.helpers import LANDING_HEADLINES, LANDING_LAYOUTS, screenshot

pytestmark = pytest.mark.browser


def variant_shown(page) -> str:
    """The `landing` variant the page shows (its layout and headline), checked against the cookie."""
    [variant] = [v for v, layout in LANDING_LAYOUTS.items()
                 if page.locator("body").get_attribute("class") == f"layout-{layout}"]
    assert page.locator("h1").inner_text() == LANDING_HEADLINES[variant]
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert StickyCookie(SECRET_KEY).loads(cookies[COOKIE]) == {"landing": variant}
    return variant


def landing_events(stack, visitor_variant):
    stats = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing",
                                                             "variant": visitor_variant}, timeout=5).json()
    return {cell["event_type"]: cell["events"] for cell in stats["matrix"]}


def test_visitor_journey(stack, page):
    page.goto(stack.landing.url + "/")
    variant = variant_shown(page)
    assert page.locator(".hero-figure svg").is_visible() == (variant == "B")
    page.reload()
    assert variant_shown(page) == variant

    with page.expect_response(lambda r: r.url.endswith("/track")) as click:
        page.locator("#cta").click()
    assert click.value.status == 202
    page.locator("#signup-form input[name=email]").fill("ada@example.com")
    page.locator("#signup-form button[type=submit]").click()
    feedback = page.locator("#form-feedback")
    feedback.filter(has_text="on the list").wait_for()
    assert "Thanks! You're on the list." in feedback.inner_text()
    screenshot(page, f"visitor-variant-{variant.lower()}")
    assert page.console_problems == []

    counts = wait_for(lambda: (c := landing_events(stack, variant)).get("form_submit") and c)
    assert counts["page_view"] >= 2 and counts["cta_click"] >= 1 and counts["form_submit"] >= 1


def test_preview_journey(stack, page):
    """A QA preview of variant B: the split page with its figure, and a click reported as forced."""
    page.goto(stack.landing.url + "/?force_variant=landing:B")
    assert page.locator("body").get_attribute("class") == "layout-split"
    assert page.locator("h1").inner_text() == LANDING_HEADLINES["B"]
    figure = page.locator(".hero-figure svg")
    assert figure.is_visible() and figure.bounding_box()["height"] > 100
    assert COOKIE not in {c["name"] for c in page.context.cookies()}  # a preview remembers nothing
    with page.expect_request(lambda r: r.url.endswith("/track")) as click:
        page.locator("#cta").click()
    assert click.value.post_data_json["forced_variant"] == "landing:B"
    assert click.value.response().status == 202
    screenshot(page, "visitor-preview-b")
    assert page.console_problems == []


def open_dashboard_view(page, stack, view, sign_in=False):
    page.goto(stack.dashboard.url)
    page.get_by_role("heading", name="Overview").wait_for()
    if sign_in:
        page.get_by_label("Token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Signed in as admin").wait_for()
    page.get_by_text(view, exact=True).first.click()
    page.get_by_role("heading", name=view).wait_for()


def test_admin_journey(stack, page):
    open_dashboard_view(page, stack, "Feature toggles", sign_in=True)
    testimonials = page.get_by_role("switch", name="Show the testimonials section")
    assert testimonials.is_checked()
    page.get_by_text("Show the testimonials section", exact=True).click()
    assert not testimonials.is_checked()
    # Labels from user text go through plain(), whose Markdown escapes show in the accessible name too.
    cta = page.get_by_role("textbox", name=plain("Text of the call-to-action button"))
    cta.fill("Start your free trial")
    cta.press("Tab")
    page.get_by_role("button", name="Save toggles").click()
    page.get_by_text("Saved:").wait_for()
    screenshot(page, "admin-toggles")
    assert page.console_problems == []

    # Each of the landing service's two workers picks the change up on its own refresh (about a second
    # apart), so the page is read until it shows the change, then read again: it stays.
    def landing_updated():
        page.goto(stack.landing.url + "/")
        return page.locator("#testimonials").count() == 0 and \
            page.locator("#cta").inner_text() == "Start your free trial"

    wait_for(landing_updated, timeout=15)
    time.sleep(3)  # past both workers' refresh
    for _ in range(4):
        assert landing_updated()


def test_analyst_journey(stack, page):
    wait_for(lambda: requests.get(f"{stack.metrics.url}/stats", timeout=5).json()["total_events"] >= 4)
    total = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing"}, timeout=5).json()
    open_dashboard_view(page, stack, "Stats")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Events").first
    metric.wait_for()
    assert metric.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "") == \
        str(total["total_events"])
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.wait_for()
    assert charts.count() == 2
    page.locator("canvas, svg.marks").first.wait_for()
    screenshot(page, "analyst-stats")
    assert page.console_problems == []


@pytest.fixture
def tracker():
    """An HTTP server on the loopback address that records every path asked of it."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            asked.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()


def hover_shows(page, target, tooltip) -> bool:
    """Hover target (moving away first, so that the hover starts afresh) and say whether tooltip opens."""
    page.mouse.move(0, 0)
    target.hover()
    try:
        tooltip.wait_for(timeout=2000)
    except PlaywrightTimeout:
        return False
    return True


def test_a_flag_description_opens_as_plain_text(stack, page, tracker):
    """A description with a Markdown image and an HTML image: the help tooltip shows the text as written
    and the browser fetches neither."""
    url, asked = tracker
    description = f"Hello ![pixel]({url}/markdown.png) <img src=\"{url}/html.png\"> **bold**"
    requests.post(f"{stack.ab.url}/flags", json={"key": "promo_note", "type": "string", "value": "Hi",
                                                 "description": description},
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5).raise_for_status()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_dashboard_view(page, stack, "Feature toggles", sign_in=True)
    target = page.get_by_test_id("stTextInput").filter(has_text="Hello").get_by_test_id("stTooltipHoverTarget")

    def drawn():  # the dashboard's reads are cached for a few seconds: the new flag shows after that
        page.reload()
        try:
            target.wait_for(timeout=10_000)
        except PlaywrightTimeout:
            return False
        page.get_by_role("heading", name="Latest changes to toggles").wait_for()  # the whole view is drawn
        return True

    wait_for(drawn, timeout=90, interval=0.5)
    tooltip = page.get_by_test_id("stTooltipContent").filter(has_text="Hello")
    wait_for(lambda: hover_shows(page, target, tooltip), timeout=60, interval=0)
    # The description as written, then the flag's key and type.
    assert tooltip.inner_text().strip().splitlines()[0] == description
    assert tooltip.inner_text().strip().endswith("Flag promo_note (string)")
    assert tooltip.locator("img").count() == 0 and tooltip.locator("strong").count() == 0
    page.wait_for_timeout(1000)  # time for an image to be asked for, were there one
    assert asked == [] and not [r for r in requested if r.startswith(url)]
