"""Real Chromium (Debian's package) driven by Playwright, against the whole stack started as processes.

Locally the browser tests skip when Chromium is absent; in CI (CI=true) that is a failure.
"""
from __future__ import annotations

import os

import pytest

from harness.browser import CHROMIUM_ARGS, chromium_path
from harness.processes import start_stack


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        message = "Chromium not found (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("browser-stack"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def landing_stack(tmp_path_factory):
    """The Flask services under gunicorn, as production runs them, without the dashboard: for the tests
    of the landing page alone."""
    stack = start_stack(tmp_path_factory.mktemp("landing-stack"), with_dashboard=False)
    yield stack
    stack.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"{msg.text} ({msg.location.get('url', '')})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.console_problems = problems
    yield page
    context.close()
