"""Figures 3 and 5: /assign for new and returning visitors, and the landing page render, against the ceiling."""
from __future__ import annotations

from pathlib import Path

from bench.common import Result, free_port, gunicorn, load

RETURNING = 2_000


def assign(data: Path) -> dict[str, Result]:
    results = {}
    port = free_port()
    with gunicorn("ab_service:create_app()", port, {"DATABASE_URL": f"sqlite:///{data / 'ab.db'}"}):
        url = f"http://127.0.0.1:{port}/assign"
        results["new"] = load(lambda s, n: s.get(url, params={"visitor_id": f"new-{n}"}))
        for n in range(RETURNING):  # make them returning visitors
            __import__("requests").get(url, params={"visitor_id": f"back-{n}"}, timeout=10)
        results["returning"] = load(lambda s, n: s.get(url, params={"visitor_id": f"back-{n % RETURNING}"}))
    port = free_port()
    with gunicorn("bench.ceiling:create_app()", port, {}):
        url = f"http://127.0.0.1:{port}/assign"
        results["ceiling"] = load(lambda s, n: s.get(url, params={"visitor_id": f"new-{n}"}))
    return results


def landing(data: Path) -> dict[str, Result]:
    ab_port, metrics_port, landing_port = free_port(), free_port(), free_port()
    env = {"AB_SERVICE_URL": f"http://127.0.0.1:{ab_port}", "METRICS_SERVICE_URL": f"http://127.0.0.1:{metrics_port}",
           "RATE_LIMIT_IP": "", "RATE_LIMIT_VISITOR": ""}
    results = {}
    with gunicorn("ab_service:create_app()", ab_port, {**env, "DATABASE_URL": f"sqlite:///{data / 'lab.db'}"}), \
            gunicorn("metrics_service:create_app()", metrics_port,
                     {**env, "DATABASE_URL": f"sqlite:///{data / 'lmetrics.db'}"}), \
            gunicorn("landing:create_app()", landing_port, {**env, "DATABASE_URL": f"sqlite:///{data / 'land.db'}"}):
        url = f"http://127.0.0.1:{landing_port}/"
        results["landing"] = load(lambda s, n: s.get(url))
    port = free_port()
    with gunicorn("bench.ceiling:create_app()", port, {}):
        url = f"http://127.0.0.1:{port}/"
        results["ceiling"] = load(lambda s, n: s.get(url))
    return results
