"""The dashboard as analysts and admins meet it, in real Chromium against the whole stack with two weeks
of `make demo` traffic: pages with URLs, sessions that survive a reload, readable results, the
Experiments page staying true after each action, the audit log as a diff, toggles that say what they do,
and no serious or critical accessibility violation (axe-core) on any page."""
from __future__ import annotations

import re

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from core.events import DEFAULT_METRIC
from harness.processes import ADMIN_TOKEN, INGEST_KEY, wait_for
from scripts import demo
from tests.helpers import console_problems, dashboard_sign_in, screenshot, settled

pytestmark = pytest.mark.browser
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PAGES = [("", "Overview"), ("/results", "Experiment results"), ("/metrics", "Metrics"), ("/stats", "Stats"),
         ("/traffic", "Traffic"), ("/explore", "Explore"), ("/experiments", "Experiments"),
         ("/toggles", "Feature toggles"), ("/audit", "Audit log"), ("/webhooks", "Webhooks")]
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def traffic(stack):
    # The demo's visitors and what they do are fixed by its seed; the clock only places the two weeks
    # (tests/unit/test_demo.py checks that landing has a winner at any time of day).
    demo.run(stack.ab.url, stack.metrics.url, ADMIN_TOKEN, INGEST_KEY)
    return stack


def counts(stack, key: str) -> str:
    """What the verdict on the experiment's primary metric stands on, as metrics_service answers it: for a
    failing assertion's message."""
    body = requests.get(f"{stack.metrics.url}/experiments/{key}/results", params={"metric": DEFAULT_METRIC},
                        headers=ADMIN, timeout=10).json()
    arms = "; ".join(f"{v['variant']} {v['conversions']}/{v['visitors']} " + (
        "(control)" if v["p_value"] is None
        else f"(p {v['p_value']:.2g}, always-valid p {v['p_value_sequential']:.2g})") for v in body["variants"])
    return f"{key} on {DEFAULT_METRIC}: {arms}. {body['verdict']}"


def open_page(page, stack, path: str, heading: str) -> None:
    page.goto(stack.dashboard.url + path)
    page.get_by_role("heading", name=heading, exact=True).wait_for()


def grid(page, index: int = 0) -> list[list[str]]:
    """The rows of the index-th table on the page, as text (from the grid's accessible table)."""
    table = page.locator('[data-testid="stDataFrame"]').nth(index).locator("table")
    table.wait_for(state="attached")
    return table.evaluate("t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent))")


def drawn(page) -> None:
    """Wait until the rerun has finished and every chart and table on the page is drawn."""
    settled(page)
    page.wait_for_load_state("networkidle")
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        charts.nth(i).locator("canvas, svg.marks").first.wait_for(state="attached")
    tables = page.locator('[data-testid="stDataFrame"]')
    for i in range(tables.count()):
        tables.nth(i).locator("table").wait_for(state="attached")


def serious_violations(page) -> list[str]:
    drawn(page)
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in SERIOUS]


def test_every_page_has_its_own_address_and_back_goes_back(traffic, page):
    stack = traffic
    open_page(page, stack, "", "Overview")
    page.get_by_role("link", name="Stats").click()
    page.get_by_role("heading", name="Stats", exact=True).wait_for()
    assert page.url.endswith("/stats")
    page.get_by_role("link", name="Explore").click()
    page.get_by_role("heading", name="Explore", exact=True).wait_for()
    assert page.url.endswith("/explore")
    page.go_back()
    page.get_by_role("heading", name="Stats", exact=True).wait_for()
    assert page.url.endswith("/stats")
    # A readout's address names its experiment.
    open_page(page, stack, "/results?experiment=promo_banner", "Experiment results")
    page.get_by_role("heading", name="Sample ratio mismatch").wait_for()
    assert page.get_by_text("visitors are not split as configured").first.is_visible()
    assert console_problems(page) == []


def test_the_overview_lists_every_experiment_newest_activity_first(traffic, page):
    open_page(page, traffic, "", "Overview")
    page.get_by_text("Sample ratio mismatches").wait_for()
    header, *rows = grid(page)
    assert header[:6] == ["Experiment", "Status", "Days running", "Exposed visitors", "Primary result (form_submit)",
                          "SRM"]
    by_key = {row[0]: row for row in rows}
    assert set(by_key) >= {"landing", "cta_copy", "promo_banner", "testimonials_test", "accent_test"}
    assert by_key["landing"][1] == "running" and by_key["landing"][2] == "14"
    assert by_key["landing"][4].startswith("B beats A: +"), counts(traffic, "landing")
    assert by_key["promo_banner"][5] == "mismatch" and by_key["landing"][5] == "ok"
    assert by_key["testimonials_test"][1] == "stopped" and by_key["accent_test"][2] == "—"
    assert [row[0] for row in rows][-1] == "accent_test"  # no activity: last
    assert "None" not in {cell for row in rows for cell in row}
    screenshot(page, "dashboard-overview")


def test_results_read_at_a_glance(traffic, page):
    open_page(page, traffic, "/results?experiment=landing", "Experiment results")
    verdict = page.locator(".st-key-verdict_card").get_by_role("heading")
    verdict.wait_for()
    assert verdict.inner_text() == "Winner: B", counts(traffic, "landing")
    header, control, treatment = grid(page)
    assert header == ["Variant", "Visitors", "Conversions", "Conversion rate", "Uplift vs control",
                      "Chance to beat control", "p-value", "Significance"]
    assert control[0] == "A (control)" and control[4:7] == ["control", "control", "control"]
    assert treatment[0] == "B" and treatment[4].startswith("+") and " to " in treatment[4]
    assert treatment[5].endswith("%") and treatment[7] == "better"
    assert all("None" not in cell for cell in control + treatment)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.wait_for()
    assert charts.count() == 4  # rate with intervals, uplift around 0%, cumulative conversion, funnel
    screenshot(page, "dashboard-results")
    assert console_problems(page) == []


def test_a_reload_keeps_the_admin_signed_in_without_the_token_in_the_browser(traffic, page):
    stack = traffic
    page.goto(stack.dashboard.url)
    page.get_by_text("the admin token in data/admin_token").wait_for()
    dashboard_sign_in(page, stack.dashboard.url)
    open_page(page, stack, "/toggles", "Feature toggles")
    page.reload()
    page.get_by_text("Signed in as admin").wait_for()
    page.get_by_role("button", name="Save toggles").wait_for()  # the admin controls, after the reload
    assert ADMIN_TOKEN not in page.url
    cookies = page.context.cookies()
    assert ADMIN_TOKEN not in str(cookies)
    [browser_id] = [c for c in cookies if c["name"] == "ll_dashboard"]
    assert browser_id["httpOnly"] and browser_id["sameSite"] == "Strict"
    storage = page.evaluate("() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
    assert ADMIN_TOKEN not in storage

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Token").wait_for()
    page.reload()
    page.get_by_label("Token").wait_for()
    assert page.get_by_text("Signed in as admin").count() == 0
    # Another browser (no cookie) is not signed in by this one's session.
    other = page.context.browser.new_context()
    try:
        fresh = other.new_page()
        fresh.goto(stack.dashboard.url)
        fresh.get_by_label("Token").wait_for()
    finally:
        other.close()


def test_the_experiments_page_stays_true_after_each_action(traffic, page):
    stack = traffic
    dashboard_sign_in(page, stack.dashboard.url)
    open_page(page, stack, "/experiments", "Experiments")
    new = page.locator(".st-key-new_experiment")
    new.get_by_text("New experiment").click()
    key = new.get_by_label("Key", exact=True)
    key.fill("stale check")
    key.press("Tab")
    new.get_by_text("Letters, digits, _ . and - only.").wait_for()  # said next to the field
    key.fill("stale_check")
    key.press("Tab")
    count = new.get_by_label("Number of variants")
    count.fill("3")
    count.press("Tab")
    new.get_by_label("Variant 3 name").wait_for()
    for i in (1, 2, 3):  # the rerun brings the values: wait for them
        expect(new.get_by_label(f"Weight {i}")).to_have_value("0.333")
    new.get_by_text("✓ Weights sum to 1").wait_for()
    count.fill("2")
    count.press("Tab")
    new.get_by_label("Variant 3 name").wait_for(state="detached")
    for i in (1, 2):
        expect(new.get_by_label(f"Weight {i}")).to_have_value("0.500")
    settled(page)  # each click lands on what the finished rerun drew
    new.get_by_role("button", name="Create as draft").click()
    page.get_by_text("Created experiment").wait_for()
    # The list and the heading show it at once.
    wait_for(lambda: "stale_check" in [row[0] for row in grid(page)], timeout=10)
    edit = page.locator(".st-key-edit_experiment")
    edit.get_by_role("heading", name="stale_check · draft").wait_for()

    settled(page)
    edit.get_by_role("button", name="Start experiment").click()
    prompt = edit.get_by_text("Start experiment 'stale_check'? It goes from draft to running.")
    prompt.wait_for()
    assert "split A 50%, B 50%" in prompt.inner_text()
    settled(page)
    edit.get_by_role("button", name="Yes, start it").click()
    page.get_by_text("is now running").wait_for()
    edit.get_by_role("heading", name="stale_check · running").wait_for()
    edit.get_by_role("button", name="Stop experiment").wait_for()
    wait_for(lambda: [row[1] for row in grid(page) if row[0] == "stale_check"] == ["running"], timeout=10)
    assert requests.get(f"{stack.ab.url}/experiments/stale_check", timeout=5).json()["status"] == "running"

    edit.get_by_label("Weight 1").fill("0.7")
    edit.get_by_label("Weight 1").press("Tab")
    edit.get_by_text("Weights sum to 1.200; they must sum to 1.").wait_for()  # checked as typed
    edit.get_by_label("Weight 2").fill("0.3")
    edit.get_by_label("Weight 2").press("Tab")
    edit.get_by_text("✓ Weights sum to 1: A 70%, B 30%").wait_for()
    settled(page)
    edit.get_by_role("button", name="Save changes").click()
    edit.get_by_text("Save changes to 'stale_check'? weights: A 50%, B 50% → A 70%, B 30%.").wait_for()
    settled(page)
    edit.get_by_role("button", name="Yes, save").click()
    page.get_by_text("Saved 'stale_check'").wait_for()
    wait_for(lambda: [row[3] for row in grid(page) if row[0] == "stale_check"] == ["A 70%, B 30%"], timeout=10)
    assert console_problems(page) == []


def test_the_audit_log_shows_each_change_as_old_and_new(traffic, page):
    stack = traffic
    requests.patch(f"{stack.ab.url}/flags/promo_discount_percent", json={"rollout": 0.25}, headers=ADMIN,
                   timeout=5).raise_for_status()
    requests.post(f"{stack.ab.url}/config", json={"promo_discount_percent": 35}, headers=ADMIN,
                  timeout=5).raise_for_status()
    dashboard_sign_in(page, stack.dashboard.url)
    open_page(page, stack, "/audit", "Audit log")
    header, newest, before, *_ = grid(page)
    assert header[:2] == ["When", "Who"] and header[2:] == ["What", "Changed", "Old", "New"]
    assert newest[1:] == ["admin", "flag promo_discount_percent", "value", "value: 20", "value: 35"]
    assert before[1:] == ["admin", "flag promo_discount_percent", "rollout", "rollout: 100%", "rollout: 25%"]
    screenshot(page, "dashboard-audit")


def test_toggles_say_what_they_do_and_warn_when_the_accent_fails_contrast(traffic, page):
    stack = traffic
    dashboard_sign_in(page, stack.dashboard.url)
    open_page(page, stack, "/toggles", "Feature toggles")
    page.get_by_role("switch", name="Show the testimonials section").wait_for()
    assert page.get_by_role("spinbutton", name="Discount shown in the launch offer").input_value() in ("20", "35")
    assert page.get_by_text("contrast of").count() == 0
    requests.post(f"{stack.ab.url}/config", json={"accent_color": "#ffd43b"}, headers=ADMIN,
                  timeout=5).raise_for_status()
    try:
        warning = page.get_by_text("White text on #ffd43b has a contrast of")

        def warned():  # reads are cached for a few seconds
            page.reload()
            page.get_by_role("button", name="Save toggles").wait_for()
            return warning.count() == 1

        wait_for(warned, timeout=20, interval=1)
        assert "WCAG AA asks for at least 4.5:1" in warning.inner_text()
    finally:
        requests.post(f"{stack.ab.url}/config", json={"accent_color": "#3b5bdb"}, headers=ADMIN,
                      timeout=5).raise_for_status()


def test_no_serious_accessibility_violation_on_any_page(traffic, page):
    """axe-core (the copy the axe-playwright-python package ships) on every page, signed out and in, and on
    the states with alerts (a sample ratio mismatch, a pending confirmation)."""
    stack = traffic
    found = {}
    for path, heading in PAGES:
        open_page(page, stack, path, heading)
        found[f"reader {path or '/'}"] = serious_violations(page)
    dashboard_sign_in(page, stack.dashboard.url)
    for path, heading in PAGES:
        open_page(page, stack, path, heading)
        found[f"admin {path or '/'}"] = serious_violations(page)
    open_page(page, stack, "/results?experiment=promo_banner", "Experiment results")
    page.get_by_role("heading", name="Sample ratio mismatch").wait_for()
    found["srm results"] = serious_violations(page)
    open_page(page, stack, "/experiments", "Experiments")
    page.get_by_role("button", name=re.compile(r"^(Start|Stop) experiment$")).click()
    page.get_by_role("button", name="Cancel").wait_for()
    found["confirmation"] = serious_violations(page)
    page.get_by_role("button", name="Cancel").click()
    assert {where: v for where, v in found.items() if v} == {}
