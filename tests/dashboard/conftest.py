"""AppTest runs the real dashboard script against real ab_service and metrics_service instances."""
from __future__ import annotations

import pytest
import streamlit as st

from tests.helpers import ADMIN_TOKEN, INGEST_KEY, LiveServer, settings_for


@pytest.fixture
def backends(tmp_path, monkeypatch):
    from ab_service import create_app as create_ab
    from metrics_service import create_app as create_metrics

    ab = LiveServer(create_ab(settings_for("ab_service", DATABASE_URL=f"sqlite:///{tmp_path / 'ab.db'}",
                                           ADMIN_TOKEN=ADMIN_TOKEN)))
    metrics = LiveServer(create_metrics(settings_for("metrics_service", INGEST_KEY=INGEST_KEY,
                                                     ADMIN_TOKEN=ADMIN_TOKEN,
                                                     DATABASE_URL=f"sqlite:///{tmp_path / 'metrics.db'}")))
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
