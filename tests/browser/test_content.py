"""An experiment an admin defines reaches the page (issue 13's acceptance), in Chromium against the real
stack: created in the dashboard with three variants that override the call to action and the layout,
started there, previewed variant by variant through the dashboard's links, seen by real visitors in each
variant (whose clicks and signups are recorded), and read back on the results page."""
from __future__ import annotations

from collections import Counter

import pytest
import requests

from dashboard.text import plain
from harness.processes import ADMIN_TOKEN, wait_for
from tests.helpers import console_problems, dashboard_sign_in, screenshot, settled

pytestmark = pytest.mark.browser
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# What each variant shows: (call to action, layout); A keeps the flags' own values.
CONTENT = {"A": ("Get started", "centered"), "B": ("Start free", "split"), "C": ("Try it now", "split")}
VISITORS = 24


def pick(scope, page, label: str, option: str) -> None:
    """Choose an option of a Streamlit selectbox or multiselect (found by its label within scope): typing
    opens its list, which shows in a popover at the page's level."""
    field = scope.get_by_label(label).and_(scope.locator("input"))
    field.click()
    field.press_sequentially(option[:6])
    page.get_by_role("option", name=option, exact=True).click()
    field.press("Escape")  # a multiselect sends its choice when its list closes
    settled(page)


def shown(page) -> tuple[str, str]:
    """(call to action, layout) of the landing page as the browser shows it."""
    layout = next(c.removeprefix("layout-") for c in page.locator("body").get_attribute("class").split()
                  if c.startswith("layout-"))
    return page.locator("#cta").first.inner_text().strip(), layout


def define_in_the_dashboard(page, stack) -> None:
    dashboard_sign_in(page, stack.dashboard.url)
    page.goto(stack.dashboard.url + "/experiments")
    page.get_by_role("heading", name="Experiments", exact=True).wait_for()
    new = page.locator(".st-key-new_experiment")
    new.get_by_text("New experiment").click()
    new.get_by_label("Key", exact=True).fill("hero_test")
    new.get_by_label("Description").fill("Call to action and layout")
    count = new.get_by_label("Number of variants")
    count.fill("3")
    count.press("Tab")
    new.get_by_label("Variant 3 name").wait_for()
    pick(new, page, "Flags this experiment changes", "Text of the call-to-action button (cta_text)")
    new.locator('[data-tag][aria-label$="(cta_text)"]').wait_for()
    pick(new, page, "Flags this experiment changes", "Layout of the hero: centered, or split (text beside the "
                                                     "form) (layout)")
    new.locator('[data-tag][aria-label$="(layout)"]').wait_for()
    assert new.locator("[data-tag]").count() == 2  # both choices held through the reruns
    for name in ("B", "C"):
        tab = new.get_by_role("tab", name=f"Variant {name}")
        tab.click()
        settled(page)
        if tab.get_attribute("aria-selected") != "true":  # a rerun that redrew the tabs took the click
            tab.click()
        new.get_by_role("tab", name=f"Variant {name}", selected=True).wait_for()
        panel = new.get_by_role("tabpanel")
        # Labels from user text go through plain(), whose Markdown escapes show in the accessible name too.
        cta = panel.get_by_label(plain("Text of the call-to-action button")).and_(panel.locator("input"))
        cta.fill(CONTENT[name][0])
        cta.press("Tab")
        pick(panel, page, plain("Layout of the hero"), CONTENT[name][1])
    new.get_by_role("button", name="Create as draft").click()
    page.get_by_text("Created experiment").wait_for()
    edit = page.locator(".st-key-edit_experiment")
    edit.get_by_role("heading", name="hero_test · draft").wait_for()

    # The built-in experiment changes the layout too and runs on all traffic: starting is refused,
    # naming both, until it is stopped.
    edit.get_by_role("button", name="Start experiment").click()
    edit.get_by_role("button", name="Yes, start it").click()
    refusal = page.get_by_text("Not changed:")
    refusal.wait_for()
    assert "landing" in refusal.inner_text() and "layout" in refusal.inner_text()
    requests.patch(f"{stack.ab.url}/experiments/landing", json={"status": "stopped"}, headers=ADMIN,
                   timeout=5).raise_for_status()
    page.reload()
    edit.get_by_role("heading", name="hero_test · draft").wait_for()
    edit.get_by_role("button", name="Start experiment").click()
    edit.get_by_role("button", name="Yes, start it").click()
    edit.get_by_role("heading", name="hero_test · running").wait_for()
    screenshot(page, "dashboard-experiment-content")


def test_an_experiment_defined_in_the_dashboard_reaches_the_page_and_its_results(stack, page, browser):
    page.set_default_timeout(60_000)  # the dashboard reruns slowly on a loaded machine
    define_in_the_dashboard(page, stack)
    stored = requests.get(f"{stack.ab.url}/experiments/hero_test", timeout=5).json()
    assert stored["status"] == "running"
    assert [v.get("overrides") for v in stored["variants"]] == [
        {}, {"cta_text": "Start free", "layout": "split"}, {"cta_text": "Try it now", "layout": "split"}]

    # Preview links, one per variant, from the dashboard.
    links = {name: page.get_by_role("link", name=f"Preview {name}").get_attribute("href") for name in CONTENT}
    assert links["B"] == f"{stack.landing.url}/?force_variant=hero_test:B"
    preview = browser.new_context().new_page()
    for name, href in links.items():
        wait_for(lambda href=href, name=name: preview.goto(href) and shown(preview) == CONTENT[name], timeout=30)
    preview.context.close()

    # Real visitors: each sees their variant's content, and /assign (fed by the landing page) agrees.
    seen: Counter[str] = Counter()
    signed_up: Counter[str] = Counter()
    for i in range(VISITORS):
        context = browser.new_context()
        visitor = context.new_page()
        try:
            visitor.goto(stack.landing.url + "/")
            content = shown(visitor)
            [variant] = [name for name, expected in CONTENT.items() if expected == content]
            seen[variant] += 1
            visitor.reload()
            assert shown(visitor) == content  # sticky
            with visitor.expect_response(lambda r: r.url.endswith("/track")):
                visitor.locator("#cta").first.click()
            if i % 2 == 0:
                visitor.locator("#signup-form input[name=email]").fill(f"visitor{i}@example.com")
                visitor.locator("#signup-form button[type=submit]").click()
                visitor.locator("#form-feedback").filter(has_text="on the list").wait_for()
                signed_up[variant] += 1
            visitor_id = next(c["value"] for c in context.cookies() if c["name"] == "ll_vid")
            assigned = wait_for(lambda vid=visitor_id: requests.get(
                f"{stack.ab.url}/assign", params={"experiment": "hero_test", "visitor_id": vid}, timeout=5).json(),
                timeout=30)
            assert assigned["variant"] == variant
        finally:
            context.close()
    assert set(seen) == set(CONTENT), seen  # every variant had visitors

    # The results page shows their exposures and signups.
    def counted():
        body = requests.get(f"{stack.metrics.url}/experiments/hero_test/results", timeout=5).json()
        counts = {v["variant"]: (v["visitors"], v["conversions"]) for v in body["variants"]}
        return counts if counts == {n: (seen[n], signed_up[n]) for n in CONTENT} else None

    wait_for(counted, timeout=60)
    page.goto(stack.dashboard.url + "/results?experiment=hero_test")
    page.get_by_role("heading", name="Experiment results").wait_for()
    table = page.locator('[data-testid="stDataFrame"] table').first
    table.wait_for(state="attached")
    rows = table.evaluate("t => [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(c => c.textContent))")
    assert {row[0].removesuffix(" (control)"): (int(row[1]), int(row[2])) for row in rows} == {
        n: (seen[n], signed_up[n]) for n in CONTENT}
    screenshot(page, "dashboard-experiment-results")
    assert console_problems(page) == []
