"""Shared fixtures: each Flask app built on a temporary database, with its test client."""
from __future__ import annotations

import pytest

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def ab_app(db_url):
    from ab_service import create_app

    return create_app({"TESTING": True, "DATABASE_URL": db_url, "ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.fixture
def ab_client(ab_app):
    return ab_app.test_client()


@pytest.fixture
def metrics_app(db_url):
    from metrics_service import create_app

    return create_app({"TESTING": True, "DATABASE_URL": db_url})


@pytest.fixture
def metrics_client(metrics_app):
    return metrics_app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
