"""The landing page, GET /, for returning and new visitors against the trivial HTML ceiling, with
several experiments running."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.services import ADMIN_TOKEN, Memory, Servers
from bench.settings import Settings
from bench.wrk import Figure, Target, compare
from harness.processes import ServiceProcess

RETURNING = 1_000  # visitors whose first visit happens before the clock starts
EXPERIMENTS = ("hero", "pricing", "checkout")  # running beside `landing`


def start_experiments(ab: ServiceProcess) -> None:
    variants = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]
    for key in EXPERIMENTS:
        response = requests.post(f"{ab.url}/experiments", timeout=30, json={
            "key": key, "status": "running", "variants": variants}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response.raise_for_status()


def first_visits(page: ServiceProcess, path: Path, count: int = RETURNING) -> Path:
    """Visit the page `count` times without cookies and write the Cookie header each new visitor
    would send next time (every cookie the page set), one per line: the returning visitors."""

    def visit(_: int) -> str:
        response = requests.get(page.url + "/", timeout=30)
        response.raise_for_status()
        return "; ".join(f"{name}={value}" for name, value in response.cookies.items())

    with ThreadPoolExecutor(8) as pool:
        headers = list(pool.map(visit, range(count)))
    if not all(headers):
        raise RuntimeError("the landing page set no cookie for a new visitor")
    path.write_text("\n".join(headers) + "\n")
    return path


def page_stack(servers: Servers) -> list[ServiceProcess]:
    """landing, ab_service and metrics_service on SQLite, each under gunicorn, with several
    experiments running: the page first, then the services it calls."""
    ab = servers.gunicorn("ab_service")
    metrics = servers.gunicorn("metrics_service")
    page = servers.gunicorn("landing", AB_SERVICE_URL=ab.url, METRICS_SERVICE_URL=metrics.url)
    start_experiments(ab)
    return [page, ab, metrics]


def landing(settings: Settings, data: Path, memory: list[Memory]) -> dict[str, Figure]:
    """Targets "returning", "new" and "ceiling". The page's CPU is the landing service's and that of
    the services it calls."""
    with Servers(data / "page", memory, "the landing page") as servers:
        stack = page_stack(servers)
        page = stack[0]
        ceiling = servers.gunicorn("ceiling")
        cookies = first_visits(page, data / "page" / "cookies.txt")
        return compare([Target("returning", page.url, "page.lua", {"cookies": str(cookies)}, stack),
                        Target("new", page.url, "page.lua", {}, stack),
                        Target("ceiling", ceiling.url, "page.lua", {}, [ceiling])], settings)
