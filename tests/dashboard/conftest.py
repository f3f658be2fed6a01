"""AppTest runs the real dashboard script against real ab_service and metrics_service instances."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ADMIN_TOKEN, LiveServer

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def backends(tmp_path, monkeypatch):
    from ab_service import create_app as create_ab
    from metrics_service import create_app as create_metrics

    ab = LiveServer(create_ab({"DATABASE_URL": f"sqlite:///{tmp_path / 'ab.db'}", "ADMIN_TOKEN": ADMIN_TOKEN}))
    metrics = LiveServer(create_metrics({"DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}"}))
    monkeypatch.setenv("AB_SERVICE_URL", ab.url)
    monkeypatch.setenv("METRICS_SERVICE_URL", metrics.url)
    st.cache_data.clear()
    yield ab, metrics
    st.cache_data.clear()
    ab.stop()
    metrics.stop()


@pytest.fixture
def down(monkeypatch, closed_port_url):
    monkeypatch.setenv("AB_SERVICE_URL", closed_port_url)
    monkeypatch.setenv("METRICS_SERVICE_URL", closed_port_url)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_view(view: str, token: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if token is not None:
        at.sidebar.text_input(key="admin_password").input(token)
        at.sidebar.button(key="sign_in").click().run()
    at.sidebar.radio(key="view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def post_events(metrics: LiveServer, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        requests.post(f"{metrics.url}/events", json=events[start:start + 1000], timeout=10).raise_for_status()


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))
