"""Debian's Chromium, found and launched the same way by the browser tests and `make screenshots`."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# Headless as root on a machine with no outside network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# Streamlit scrolls an inner element, not the document, so a full-page screenshot would stop at the
# viewport: the page is first made as tall as that element's content.
CONTENT_HEIGHT = """() => Math.max(document.documentElement.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section.main')]
        .map((el) => el.scrollHeight))"""


def full_page_screenshot(page, path: str | Path) -> Path:
    """A screenshot of the whole page (not cut at the viewport), also for Streamlit's scrolling layout."""
    size = page.viewport_size or {"width": 1280, "height": 900}
    height = int(page.evaluate(CONTENT_HEIGHT))
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(height, 12_000)})
        page.wait_for_timeout(500)
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return Path(path)
