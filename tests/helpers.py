"""Helpers the tests reach by import (never from a conftest): in-process servers, the landing app, views."""
from __future__ import annotations

import html
import importlib
import json
import os
import random
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from flask import Flask
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest
from werkzeug.serving import make_server

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "test-admin-token"
INGEST_KEY = "test-ingest-key"  # metrics_service's INGEST_KEY in the test apps; the landing app sends it
INGEST_HEADERS = {"Authorization": f"Bearer {INGEST_KEY}"}
DASHBOARD_APP = str(ROOT / "dashboard" / "app.py")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


class LiveServer:
    """A Flask app served by werkzeug on a free port in a daemon thread."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


def run_together(*calls, timeout: float = 60) -> list:
    """Call each function in a thread of its own, all released at once; their results, or the
    exceptions they raised, in order (each thread waited for up to `timeout` seconds)."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def call(i):
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - returned for the test's assertions
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


def snapshot(conn, aggregates) -> dict[str, set[tuple]]:
    """Every aggregate row except zero counters, for comparing maintained and rebuilt aggregates."""
    from sqlalchemy import select

    counters = {aggregates.agg_events: "events", aggregates.agg_cohorts: "visitors", aggregates.agg_active: "visitors",
                aggregates.agg_segments: "visitors", aggregates.visitor_events: "events",
                aggregates.agg_event_segments: "events", aggregates.agg_active_segments: "visitors"}
    result = {}
    for table in aggregates.tables:
        rows = conn.execute(select(table)).all()
        if table in counters:
            index = list(table.c.keys()).index(counters[table])
            rows = [r for r in rows if r[index] != 0]
        result[table.name] = {tuple(r) for r in rows}
    return result


def stored_form(events: list[dict]) -> tuple[list, list]:
    """Events as POST /events hands them to MetricsStore.insert_events: rows, and each one's context."""
    from core.events import parse_events, to_row

    parsed = parse_events(events)
    return [to_row(event) for event in parsed], [event.context.values() if event.context else None for event in parsed]


def country_database(path: Path, networks: dict[str, str]) -> Path:
    """A MaxMind-format country database at path: {"203.0.113.0/24": "FR", ...} (IPv4 and IPv6)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for network, code in networks.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path


def metric_snapshot(conn) -> dict[str, dict[tuple, tuple]]:
    """The metric aggregates (visitor_values, agg_metric) as {key: values}, all-zero rows left out."""
    from sqlalchemy import select

    from metrics_service.store import metric_tables

    result = {}
    for table in (metric_tables.visitor_values, metric_tables.agg_metric):
        keys = len(table.primary_key.columns)
        result[table.name] = {tuple(r[:keys]): tuple(r[keys:]) for r in conn.execute(select(table)).all()
                              if any(r[keys:])}
    return result


def assert_metric_sums_equal(maintained: dict, rebuilt: dict) -> None:
    """Counts equal exactly; value sums (floating point) up to rounding."""
    import pytest

    for name, rows in maintained.items():
        assert rows.keys() == rebuilt[name].keys(), name
        for key, values in rows.items():
            assert values == pytest.approx(rebuilt[name][key], rel=1e-9, abs=1e-9), (name, key)
            assert [v for v in values if isinstance(v, int)] == [v for v in rebuilt[name][key] if isinstance(v, int)]


def assert_matches_rebuild(store) -> None:
    """The aggregates a MetricsStore kept at ingest (every queued event folded) equal the ones rebuilt
    from its raw events."""
    from metrics_service.store import aggregates

    store.settle()
    with store.engine.connect() as conn:
        maintained = snapshot(conn, aggregates)
        maintained_sums = metric_snapshot(conn)
    store.rebuild_aggregates()
    with store.engine.connect() as conn:
        assert snapshot(conn, aggregates) == maintained
        assert_metric_sums_equal(maintained_sums, metric_snapshot(conn))


def settings_for(service: str, **env: str) -> Settings:
    """A service's settings from the given environment alone: a test's own configuration, which
    replaces the process environment. ab_service's background jobs stay off unless asked for: tests
    run them by calling them. Reads are open (PUBLIC_READS=true, as on a trusted network) unless env says
    otherwise: tests of the data read it without a token; tests/api/test_roles.py closes them."""
    return Settings.from_env(service, environ={"JOBS_AUTOSTART": "false", "PUBLIC_READS": "true", **env})


@contextmanager
def flask_app(service: str, **env: str) -> Iterator[Flask]:
    """One of the Flask services, configured by the given environment alone; its engine disposed after."""
    app = importlib.import_module(service).create_app(settings_for(service, **env))
    try:
        yield app
    finally:
        if "metrics_store" in app.extensions:
            app.extensions["metrics_store"].stop_folding()
        for name in ("ab_store", "metrics_store"):
            if name in app.extensions:
                app.extensions[name].engine.dispose()


def make_landing(tmp_path, ab_url, metrics_url, **env):
    """The landing app without background threads: tests deliver the outbox and refresh the
    definitions themselves (it has fetched them once, when ab_service answered)."""
    from landing import create_app

    app = create_app(settings_for("landing", **{
        "DATABASE_URL": f"sqlite:///{tmp_path / 'landing.db'}", "DATA_DIR": str(tmp_path), "AB_SERVICE_URL": ab_url,
        "METRICS_SERVICE_URL": metrics_url, "OUTBOX_AUTOSTART": "false", "REFRESH_SECONDS": "0",
        "INGEST_KEY": INGEST_KEY, **env}))
    app.extensions["definitions"].refresh()
    return app


# The built-in `landing` experiment as a visitor sees it: A the centered page, B the split one.
LANDING_HEADLINES = {"A": "Ship experiments, not guesses", "B": "Know what works before you scale it"}
LANDING_LAYOUTS = {"A": "centered", "B": "split"}


def landing_variant_shown(html: str) -> str:
    """Which variant of the `landing` experiment a page shows, read from its content (layout and headline)."""
    layout = re.search(r'<body class="layout-([a-z]+)"', html).group(1)
    headline = re.search(r"<h1>(.*?)</h1>", html, re.DOTALL).group(1)
    [variant] = [v for v, shown in LANDING_LAYOUTS.items() if shown == layout]
    assert headline == LANDING_HEADLINES[variant], f"{layout} page with headline {headline!r}"
    return variant


def refresh(landing_app) -> None:
    """What the landing service's background refresher does every second, now."""
    assert landing_app.extensions["definitions"].refresh(), "ab_service's flags and experiments unavailable"


def shown_variants(landing_app, response) -> dict[str, str]:
    """{experiment: variant} the landing page remembered for the visitor (its signed ll_asg cookie)."""
    from landing.sticky import COOKIE

    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return landing_app.extensions["sticky"].loads(rest.split(";")[0])
    raise AssertionError(f"no {COOKIE} cookie set")


# The dashboard's pages by title, as st.navigation lists them (dashboard/app.py), and their scripts.
VIEW_PAGES = {
    "Overview": "views/overview.py",
    "Experiment results": "views/results.py",
    "Stats": "views/stats.py",
    "Traffic": "views/traffic.py",
    "Explore": "views/explore.py",
    "Experiments": "views/experiments.py",
    "Feature toggles": "views/flags.py",
    "Audit log": "views/audit.py",
    "Webhooks": "views/webhooks.py",
    "Metrics": "views/metrics.py",
}


def open_view(view: str, token: str | None = None) -> AppTest:
    """The dashboard opened on its first page, signed in with token when given, then switched to view."""
    at = AppTest.from_file(DASHBOARD_APP, default_timeout=30)
    at.run()
    if token is not None:
        at.sidebar.text_input(key="admin_password").input(token)
        at.sidebar.button(key="sign_in").click().run()
    at.switch_page(VIEW_PAGES[view]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def post_events(metrics: LiveServer, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        requests.post(f"{metrics.url}/events", json=events[start:start + 1000], headers=INGEST_HEADERS,
                      timeout=10).raise_for_status()


def register_event_types(metrics: LiveServer, *keys: str, description: str = "") -> None:
    """Register event types with metrics_service, with the admin token (as an analyst does on the Metrics page)."""
    for key in keys:
        requests.post(f"{metrics.url}/event-types", json={"key": key, "description": description},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10).raise_for_status()


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Opened at a page's address (/stats), Streamlit's frontend first looks for its server under that path
# and then at the root: the two 404s of that search are expected.
BASE_PATH_PROBE = re.compile(r"status of 404 .*\(https?://[^/]+/[^_][^ ]*/_stcore/(health|host-config)\)$")


def console_problems(page) -> list[str]:
    """The page's console errors, less Streamlit's search for its base path."""
    return [p for p in page.console_problems if not BASE_PATH_PROBE.search(p)]


def dashboard_sign_in(page, dashboard_url: str, token: str | None = None) -> None:
    """Sign in to the dashboard in the browser with the stack's admin token (or the token given)."""
    from harness.processes import ADMIN_TOKEN

    page.goto(dashboard_url)
    page.get_by_label("Token").fill(token or ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as admin").wait_for()


def require_nginx() -> None:
    """The proxy tests need Debian's nginx: they skip without it locally; in CI (CI=true) that is a failure."""
    from harness.proxy import nginx_path

    if nginx_path() is None:
        message = "nginx not found (apt-get install nginx, or set NGINX_PATH)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# Streamlit renders labels, help tooltips, headings, alerts and Markdown bodies as CommonMark with GFM
# tables and strikethrough; markdown-it renders them the same way for the tests.
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
MARKDOWN_FIELDS = {"label", "help", "body"}


def markup(source: str) -> set[str]:
    """The HTML elements Markdown makes of source, besides paragraphs and line breaks: empty for plain text."""
    return set(re.findall(r"<([a-z0-9]+)", MARKDOWN.render(source))) - {"p", "br"}


def shown(source: str) -> str:
    """The text a reader sees when source is rendered as Markdown (lines joined by newlines)."""
    rendered = MARKDOWN.render(source).replace("<br />\n", "\n")
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace("\u00a0", " ").strip("\n")


def _fields(at: AppTest):
    """(where, message, field descriptor, value) for every set field of every element the app rendered."""
    def walk(message, where):
        for fd, value in message.ListFields():
            for item in (list(value) if fd.is_repeated else [value]):
                if fd.type == fd.TYPE_MESSAGE:
                    yield from walk(item, f"{where}.{fd.name}")
                else:
                    yield where, message, fd, item

    for node in [*at.sidebar, *at.main]:
        if getattr(node, "proto", None) is not None:
            yield from walk(node.proto, type(node).__name__)


def markdown_sources(at: AppTest) -> list[tuple[str, str]]:
    """(where, source) for every text of the rendered app that Streamlit shows as Markdown: labels, help
    tooltips, headings, alerts, captions, Markdown bodies and radio options."""
    return [(f"{where}.{fd.name}", value) for where, message, fd, value in _fields(at)
            if fd.type == fd.TYPE_STRING and (fd.name in MARKDOWN_FIELDS or
                                              (fd.name == "options" and message.DESCRIPTOR.name == "Radio"))]


def raw_html_allowed(at: AppTest) -> list[str]:
    """Where the rendered app lets raw HTML through (st.markdown(..., unsafe_allow_html=True), st.html)."""
    return [where for where, message, fd, value in _fields(at)
            if (fd.name == "allow_html" and value) or message.DESCRIPTOR.name == "Html"]
OLD_FLAGS = [  # the seed flags before content flags, as ab0001-era installations have them
    ("show_promo_section", "boolean", True, "Show the launch-offer section"),
    ("enable_signup_form", "boolean", True, "Show the signup form and accept signups"),
    ("show_testimonials", "boolean", True, "Show the testimonials section"),
    ("cta_text", "string", "Join now", "Text of the call-to-action button"),  # changed by an admin
    ("hero_headline", "string", "", "Replaces the variant's headline when set"),
    ("accent_color", "color", "#3b5bdb", "Accent colour of the page"),
    ("promo_discount_percent", "number", 20, "Discount shown in the launch offer"),
]


def old_ab_installation(db_url: str, headline: str = "") -> None:
    """An ab_service database as the previous version left it: schema ab0001, its seed rows, an admin's experiment."""
    import sqlalchemy as sa

    from ab_service import store as ab_store
    from core.db import make_engine
    from core.migrate import upgrade

    engine = make_engine(db_url)
    upgrade(engine, ab_store.MIGRATIONS, ab_store.VERSION_TABLE, revision="ab0001")
    experiments = sa.table("experiments", *[sa.column(c) for c in ("key", "description", "coverage", "seed",
                                                                    "status", "created_at", "updated_at")],
                           sa.column("variants", sa.JSON))
    flags = sa.table("flags", *[sa.column(c) for c in ("key", "type", "value", "off_value", "rollout",
                                                        "description", "updated_at")])
    with engine.begin() as conn:
        conn.execute(sa.insert(experiments), [
            {"key": "landing", "description": "Landing page headline and layout", "coverage": 1.0, "seed": None,
             "status": "running", "created_at": 1, "updated_at": 1,
             "variants": [{"name": "A", "weight": 0.3}, {"name": "B", "weight": 0.7}]},
            {"key": "pricing", "description": "", "coverage": 0.5, "seed": "p", "status": "running",
             "created_at": 2, "updated_at": 2,
             "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]},
        ])
        conn.execute(sa.insert(flags), [
            {"key": key, "type": kind, "value": json.dumps(headline if key == "hero_headline" else value),
             "off_value": json.dumps(headline if key == "hero_headline" else value), "rollout": 1.0,
             "description": description, "updated_at": 1}
            for key, kind, value, description in OLD_FLAGS])
        conn.execute(sa.text("INSERT INTO assignments (experiment, visitor_id, variant, assigned_at) "
                          "VALUES ('landing', 'v1', 'B', 5)"))
    engine.dispose()


def mixed_visitors(count: int, seed: int = 7) -> list[dict]:
    """Visitor attributes as the landing page computes them, mixed: devices, browsers, campaigns (one
    in upper case), referrers, returning or not."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        attributes = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "device": rng.choice(["desktop", "mobile", "tablet"]),
            "browser": rng.choice(["chrome", "firefox", "safari"]),
            "path": "/",
            "returning": rng.random() < 0.4,
        }
        if rng.random() < 0.5:
            attributes["utm_source"] = rng.choice(["google", "newsletter", "GOOGLE", "bing"])
        if rng.random() < 0.3:
            attributes["referrer_host"] = rng.choice(["news.example.com", "example.org"])
        out.append(attributes)
    return out


def sdk_decisions(features: dict, attributes: dict) -> tuple[dict, dict]:
    """What the official GrowthBook SDK decides from a features payload: every feature's value, and
    {experiment: variant} (the variation's meta key) for the experiments it puts the visitor in."""
    from growthbook import GrowthBook

    gb = GrowthBook(attributes=dict(attributes), features=features)  # destroy() clears what it was given
    try:
        values, variants = {}, {}
        for key in features:
            result = gb.eval_feature(key)
            values[key] = result.value
            if result.source == "experiment":
                meta = result.experiment.meta[result.experimentResult.variationId]
                variants[result.experiment.key] = meta["key"]
        return values, variants
    finally:
        gb.destroy()


def settled(page) -> None:
    """Wait until the dashboard's script is not running (Streamlit marks its root with the run's state), so
    that the next action lands on what the finished rerun drew."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(state="attached")


@contextmanager
def dashboard_backends(tmp_path, monkeypatch, **env: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """ab_service and metrics_service serving in this process with `env` as their settings, named to the
    dashboard through its environment; Streamlit's data cache cleared before and after."""
    import streamlit as st

    from ab_service import create_app as create_ab
    from metrics_service import create_app as create_metrics

    ab = LiveServer(create_ab(settings_for("ab_service", DATABASE_URL=f"sqlite:///{tmp_path / 'ab.db'}", **env)))
    metrics = LiveServer(create_metrics(settings_for("metrics_service", INGEST_KEY=INGEST_KEY, **env,
                                                     DATABASE_URL=f"sqlite:///{tmp_path / 'metrics.db'}")))
    monkeypatch.setenv("AB_SERVICE_URL", ab.url)
    monkeypatch.setenv("METRICS_SERVICE_URL", metrics.url)
    st.cache_data.clear()
    try:
        yield ab, metrics
    finally:
        st.cache_data.clear()
        ab.stop()
        metrics.stop()


# For a test of logic the storage takes no part in (thousands of requests checking a hash): it runs on
# SQLite alone, the parametrisation replacing conftest's `backend` fixture (both backends).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
