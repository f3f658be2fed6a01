"""The servers a figure loads, as production runs them (gunicorn with the shipped config), and what
each process holds in memory when the figure is done."""
from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from harness.postgres import Schemas
from harness.processes import ServiceProcess, free_port, gunicorn_command, resident_bytes, running

ADMIN_TOKEN = "bench-admin-token"
INGEST_KEY = "bench-ingest-key"
LANDING_TOKEN = "bench-landing-token"  # the viewer token the landing service reads ab_service with
STARTS = 3  # attempts, each on a new free port
# gunicorn's master exits when a worker fails to boot, which can happen after another worker has
# already answered the health check (workers racing to create a table): a server must still be
# running this long after it first answered.
SETTLE = 1.5
CEILING_APP = "bench.ceiling:create_app()"
APPS = {
    "ab_service": "ab_service:create_app()",
    "metrics_service": "metrics_service:create_app()",
    "landing": "landing:create_app()",
    "ceiling": CEILING_APP,
}


@dataclass(frozen=True)
class Memory:
    """Resident memory of one server's processes (gunicorn's master, then its workers) after a figure's load."""

    server: str
    after: str
    resident: tuple[int, ...]

    @property
    def largest(self) -> int:
        return max(self.resident, default=0)


class Servers:
    """Servers started for one group of figures, all stopped when the block ends; on the way out it
    notes each one's resident memory in `memory` (a list shared by the whole run)."""

    def __init__(self, data: Path, memory: list[Memory], after: str):
        self.data = data
        self.memory = memory
        self.after = after
        self.started: list[tuple[str, ServiceProcess]] = []
        self._stack = ExitStack()

    def __enter__(self) -> Servers:
        self.data.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        for label, service in self.started:
            self.memory.append(Memory(label, self.after, tuple(resident_bytes(pid) for pid in service.pids())))
        for _, service in self.started:  # every server shuts down at once; closing the stack waits for each
            service.terminate()
        self._stack.close()

    def gunicorn(self, app: str, label: str | None = None, cpu: int | None = None, **env: str) -> ServiceProcess:
        """APPS[app] under gunicorn with the shipped config, on a free port, logging beside the data;
        on SQLite in a folder of its own unless env names a DATABASE_URL; with `cpu`, every process of
        it pinned to that core (taskset)."""
        label = label or app
        folder = self.data / label
        # No per-key ingest limit: a throughput figure would otherwise measure RATE_LIMIT_INGEST.
        env = {"DATA_DIR": str(folder), "DATABASE_URL": f"sqlite:///{folder / (app + '.db')}",
               "ADMIN_TOKEN": ADMIN_TOKEN, "INGEST_KEY": INGEST_KEY, "RATE_LIMIT_INGEST": "",
               "API_TOKENS": f"landing:viewer:{LANDING_TOKEN}", "AB_SERVICE_TOKEN": LANDING_TOKEN, **env}
        for attempt in range(STARTS):
            port = free_port()
            log = self.data / f"{label}.log"
            try:
                pinned = [] if cpu is None else ["taskset", "-c", str(cpu)]
                service = self._stack.enter_context(running(
                    [*pinned, *gunicorn_command(APPS[app], port)], env, f"http://127.0.0.1:{port}/health",
                    log_path=log))
                time.sleep(SETTLE)
                if service.process.poll() is None:
                    break
                problem = f"exited with {service.process.returncode} after answering its health check"
            except RuntimeError as exc:  # on a shared machine another program may have taken the port
                problem = str(exc)
            if attempt == STARTS - 1:
                raise RuntimeError(f"{label} would not start: {problem}; see {log}")
            print(f"{label} {problem}; starting it again (see {log})", file=sys.stderr, flush=True)
        self.started.append((label, service))
        return service

    def schema(self, base_url: str) -> str:
        """A fresh PostgreSQL schema's URL in the database at base_url, dropped after the servers stop."""
        schemas = Schemas(base_url, prefix="bench_")
        self._stack.callback(schemas.close)
        return schemas.new_url()
