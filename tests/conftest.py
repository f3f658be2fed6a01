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


class LiveServer:
    """A Flask app served by werkzeug on a free port in a daemon thread."""

    def __init__(self, app):
        import threading

        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def ab_server(ab_app):
    server = LiveServer(ab_app)
    yield server
    server.stop()


@pytest.fixture
def metrics_server(tmp_path):
    from metrics_service import create_app

    server = LiveServer(create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}"}))
    yield server
    server.stop()


@pytest.fixture
def closed_port_url():
    """A URL on which nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_landing(tmp_path, ab_url, metrics_url, **extra):
    from landing import create_app

    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'landing.db'}",
        "AB_SERVICE_URL": ab_url,
        "METRICS_SERVICE_URL": metrics_url,
        "OUTBOX_AUTOSTART": False,
        "CONFIG_TTL_SECONDS": 0,
        **extra,
    }
    return create_app(config)


@pytest.fixture
def landing_app(tmp_path, ab_server, metrics_server):
    return make_landing(tmp_path, ab_server.url, metrics_server.url)


@pytest.fixture
def landing_client(landing_app):
    return landing_app.test_client()
