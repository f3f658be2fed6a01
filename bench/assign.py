"""/assign for returning and new visitors against the trivial GET JSON ceiling."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.services import Memory, Servers
from bench.settings import Settings
from bench.wrk import Figure, Target, compare
from harness.processes import ServiceProcess

RETURNING = 2_000  # visitors assigned before the clock starts; the returning-visitor runs cycle through them


def assign_returning(service: ServiceProcess, count: int = RETURNING) -> None:
    """Make back-0 .. back-(count-1) returning visitors of the `landing` experiment."""
    with requests.Session() as session, ThreadPoolExecutor(8) as pool:
        for response in pool.map(lambda n: session.get(f"{service.url}/assign", timeout=30,
                                                       params={"visitor_id": f"back-{n}", "experiment": "landing"}),
                                 range(count)):
            response.raise_for_status()


def assign(settings: Settings, data: Path, memory: list[Memory]) -> dict[str, Figure]:
    """ab_service on SQLite (and on PostgreSQL with settings.database_url) and the ceiling; targets
    named "<backend> returning", "<backend> new" and "ceiling"."""
    with Servers(data / "assign", memory, "/assign") as servers:
        backends = {"SQLite": servers.gunicorn("ab_service")}
        if settings.database_url:
            backends["PostgreSQL"] = servers.gunicorn("ab_service", "ab_service (PostgreSQL)",
                                                      DATABASE_URL=servers.schema(settings.database_url))
        ceiling = servers.gunicorn("ceiling")
        targets = []
        for name, service in backends.items():
            assign_returning(service)
            targets += [Target(f"{name} returning", service.url, "assign.lua", {"pool": str(RETURNING)}, [service]),
                        Target(f"{name} new", service.url, "assign.lua", {}, [service])]
        targets.append(Target("ceiling", ceiling.url, "assign.lua", {}, [ceiling]))
        return compare(targets, settings)
