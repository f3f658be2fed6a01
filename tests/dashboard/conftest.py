"""AppTest runs the real dashboard script against real ab_service and metrics_service instances."""
from __future__ import annotations

import pytest
import streamlit as st

from tests.helpers import ADMIN_TOKEN, dashboard_backends


@pytest.fixture
def backends(tmp_path, monkeypatch):
    with dashboard_backends(tmp_path, monkeypatch, ADMIN_TOKEN=ADMIN_TOKEN) as both:
        yield both


@pytest.fixture
def down(monkeypatch, closed_port_url):
    monkeypatch.setenv("AB_SERVICE_URL", closed_port_url)
    monkeypatch.setenv("METRICS_SERVICE_URL", closed_port_url)
    st.cache_data.clear()
    yield
    st.cache_data.clear()
