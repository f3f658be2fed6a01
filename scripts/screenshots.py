"""Regenerate the README's screenshots: `make screenshots` (needs Debian's chromium).

Starts the whole stack on a temporary data directory, loads the `make demo` traffic into it through the
real APIs, and photographs every dashboard page and both landing variants, full page.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.browser import CHROMIUM_ARGS, chromium_path, full_page_screenshot  # noqa: E402
from harness.processes import ADMIN_TOKEN, INGEST_KEY, start_stack  # noqa: E402
from scripts import demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# (file name, dashboard address, text to wait for); photographed signed in
DASHBOARD_PAGES = [
    ("dashboard-overview", "/", "Sample ratio mismatches"),
    ("dashboard-results", "/results?experiment=landing", "Winner"),
    ("dashboard-results-srm", "/results?experiment=promo_banner", "Visitors are not split"),
    ("dashboard-stats", "/stats", "Variant × event type"),
    ("dashboard-explore", "/explore", "Events over time"),
    ("dashboard-traffic", "/traffic", "Visitors per"),
    ("dashboard-metrics", "/metrics", "Define a metric"),
    ("dashboard-experiments", "/experiments?experiment=cta_copy", "cta_copy · running"),
    ("dashboard-toggles", "/toggles", "Latest changes to toggles"),
    ("dashboard-audit", "/audit", "changes, newest first"),
    ("dashboard-webhooks", "/webhooks", "Add a webhook"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNG files")
    out = parser.parse_args().out
    path = chromium_path()
    if path is None:
        sys.exit("Chromium not found: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="landing-lab-shots-")))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(60_000)
            for variant in ("A", "B"):
                page.goto(f"{stack.landing.url}/?force_variant=landing:{variant}")
                full_page_screenshot(page, out / f"landing-variant-{variant.lower()}.png")
                print("saved", out / f"landing-variant-{variant.lower()}.png")

            # The landing page above as a fresh install shows it; the dashboard below with the demo's data.
            demo.run(stack.ab.url, stack.metrics.url, ADMIN_TOKEN, INGEST_KEY)

            page.goto(stack.dashboard.url)
            page.get_by_label("Token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Signed in as admin").wait_for()
            for name, address, marker in DASHBOARD_PAGES:
                page.goto(stack.dashboard.url + address)
                page.get_by_text(marker).first.wait_for()
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(2500)  # let the charts finish drawing
                full_page_screenshot(page, out / f"{name}.png")
                print("saved", out / f"{name}.png")
            browser.close()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
