"""Figures 3 and 5: /assign for new and returning visitors, and the landing page render, against the ceiling."""
from __future__ import annotations

from pathlib import Path

import requests

from bench.common import Result, compare, free_port, gunicorn

RETURNING = 2_000


def assign(data: Path) -> dict[str, Result]:
    ab_port, ceiling_port = free_port(), free_port()
    with gunicorn("ab_service:create_app()", ab_port, {"DATABASE_URL": f"sqlite:///{data / 'ab.db'}"}), \
            gunicorn("bench.ceiling:create_app()", ceiling_port, {}):
        url = f"http://127.0.0.1:{ab_port}/assign"
        for n in range(RETURNING):  # make them returning visitors
            requests.get(url, params={"visitor_id": f"back-{n}"}, timeout=10)
        ceiling = f"http://127.0.0.1:{ceiling_port}/assign"
        return compare({
            "new": lambda s, n: s.get(url, params={"visitor_id": f"new-{n}"}),
            "returning": lambda s, n: s.get(url, params={"visitor_id": f"back-{n % RETURNING}"}),
            "ceiling": lambda s, n: s.get(ceiling, params={"visitor_id": f"new-{n}"}),
        })


def landing(data: Path) -> dict[str, Result]:
    ab_port, metrics_port, landing_port, ceiling_port = free_port(), free_port(), free_port(), free_port()
    env = {"AB_SERVICE_URL": f"http://127.0.0.1:{ab_port}", "METRICS_SERVICE_URL": f"http://127.0.0.1:{metrics_port}",
           "RATE_LIMIT_IP": "", "RATE_LIMIT_VISITOR": ""}
    with gunicorn("ab_service:create_app()", ab_port, {**env, "DATABASE_URL": f"sqlite:///{data / 'lab.db'}"}), \
            gunicorn("metrics_service:create_app()", metrics_port,
                     {**env, "DATABASE_URL": f"sqlite:///{data / 'lmetrics.db'}"}), \
            gunicorn("landing:create_app()", landing_port, {**env, "DATABASE_URL": f"sqlite:///{data / 'land.db'}"}), \
            gunicorn("bench.ceiling:create_app()", ceiling_port, {}):
        page, ceiling = f"http://127.0.0.1:{landing_port}/", f"http://127.0.0.1:{ceiling_port}/"
        return compare({"landing": lambda s, n: s.get(page), "ceiling": lambda s, n: s.get(ceiling)})
