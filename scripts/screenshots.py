"""Regenerate the README's screenshots: `make screenshots` (needs Debian's chromium).

Starts the whole stack on a temporary SQLite data directory, sends some traffic through the landing
page and a simulated experiment straight to metrics_service, and photographs the pages.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.http import bearer  # noqa: E402
from harness.browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from harness.processes import ADMIN_TOKEN, INGEST_KEY, start_stack  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def simulated_traffic(metrics_url: str, rng: random.Random) -> None:
    """Three days of a landing experiment in which B converts better."""
    now = datetime.now(UTC)
    events = []
    for i in range(2400):
        variant = "A" if i % 2 else "B"
        visitor = f"sim-{i}"
        seen = now - timedelta(hours=rng.uniform(1, 72))
        events.append({"visitor_id": visitor, "variant": variant, "event_type": "page_view",
                       "timestamp": seen.isoformat(), "event_id": str(uuid.uuid4())})
        if rng.random() < (0.30 if variant == "B" else 0.24):
            events.append({"visitor_id": visitor, "variant": variant, "event_type": "cta_click",
                           "timestamp": (seen + timedelta(seconds=20)).isoformat()})
            if rng.random() < (0.45 if variant == "B" else 0.40):
                events.append({"visitor_id": visitor, "variant": variant, "event_type": "form_submit",
                               "timestamp": (seen + timedelta(seconds=90)).isoformat()})
    for start in range(0, len(events), 1000):
        requests.post(f"{metrics_url}/events", json=events[start:start + 1000], headers=bearer(INGEST_KEY),
                      timeout=30).raise_for_status()


def main() -> None:
    path = chromium_path()
    if path is None:
        sys.exit("Chromium not found: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="landing-lab-shots-")))
    try:
        simulated_traffic(stack.metrics.url, random.Random(7))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            for variant in ("A", "B"):
                page.goto(f"{stack.landing.url}/?force_variant={variant}")
                page.screenshot(path=str(OUT / f"landing-variant-{variant.lower()}.png"))
                print("saved", OUT / f"landing-variant-{variant.lower()}.png")

            page.goto(stack.dashboard.url)
            page.get_by_label("Admin token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Signed in as admin").wait_for()
            for view, name in (("Stats", "stats"), ("Experiment results", "results"), ("Explore", "explore"),
                               ("Feature toggles", "toggles"), ("Experiments", "experiments")):
                page.get_by_text(view, exact=True).first.click()
                page.get_by_role("heading", name=view).wait_for()
                page.wait_for_load_state("networkidle")
                time.sleep(2.5)  # let the charts finish drawing
                page.screenshot(path=str(OUT / f"dashboard-{name}.png"), full_page=True)
                print("saved", OUT / f"dashboard-{name}.png")
            browser.close()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
