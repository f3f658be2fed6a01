"""`make run`: start the four services on SQLite under ./data, say when each answers, stop them on Ctrl-C.

- One stack per folder: a second start finds the first by its lock file (data/run.lock, an flock held
  while the stack runs, so a crashed run never blocks the next) and says where it is.
- Secrets are made once and kept in the data folder: data/admin_token, data/ingest_key,
  data/landing_token (the viewer token the landing service reads flags and experiments with, added to
  API_TOKENS as `landing:viewer:<token>`) and data/secret_key (what the landing page signs its
  assignment cookie with).
- Each service's output goes to data/logs/<service>.log; the terminal shows only what a person needs:
  the URLs once every service answers its health check, and a short line when it stops.
- Ports: AB_SERVICE_PORT, METRICS_SERVICE_PORT, LANDING_PORT, DASHBOARD_PORT (defaults 5002, 5001,
  8080, 8081); the data folder: DATA_DIR (default ./data).
"""
from __future__ import annotations

import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15


@dataclass
class Service:
    name: str
    port_variable: str
    port: int
    health_path: str
    what: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.name == "dashboard":
            return [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "server.py"),
                    "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
                    "--browser.gatherUsageStats", "false"]
        return [sys.executable, "-m", self.name]


def services(environ: dict[str, str]) -> list[Service]:
    table = [("ab_service", "AB_SERVICE_PORT", 5002, "/health", "assignment and toggles API"),
             ("metrics_service", "METRICS_SERVICE_PORT", 5001, "/health", "events and stats API"),
             ("landing", "LANDING_PORT", 8080, "/health", "the landing page, for visitors"),
             ("dashboard", "DASHBOARD_PORT", 8081, "/_stcore/health", "the dashboard, for admins and analysts")]
    return [Service(name, variable, int(environ.get(variable, port)), health, what)
            for name, variable, port, health, what in table]


def secret(data_dir: Path, name: str) -> str:
    """The secret kept in data_dir/name, made (readable by its owner only) when missing."""
    path = data_dir / name
    if not path.exists() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


class AlreadyRunning(Exception):
    """Another `make run` holds this folder's lock; its message says where that stack is."""


def take_lock(data_dir: Path) -> IO[str]:
    """Hold data_dir/run.lock for as long as the returned file stays open; AlreadyRunning when another
    process holds it (the lock goes with its process, however that process ends)."""
    handle = open(data_dir / "run.lock", "a+")  # noqa: SIM115 - kept open while the stack runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        described = handle.read().strip()
        handle.close()
        raise AlreadyRunning(described or "another `make run` in this folder") from None
    handle.seek(0)
    handle.truncate()
    return handle


def describe(stack: list[Service]) -> str:
    return "\n".join(f"  {s.name:<16} {s.url:<24} {s.what}" for s in stack)


def healthy(service: Service) -> bool:
    try:
        return requests.get(service.url + service.health_path, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every service's process group, then SIGKILL to what lingers."""
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main() -> int:
    environ = dict(os.environ)
    data_dir = Path(environ.get("DATA_DIR", "data")).resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = services(environ)
    try:
        lock = take_lock(data_dir)
    except AlreadyRunning as exc:
        print(f"Landing Lab is already running in this folder ({exc}).\n"
              f"Stop it with Ctrl-C in its terminal, or open:\n{describe(stack)}")
        return 0

    by_name = {s.name: s for s in stack}
    landing_token = secret(data_dir, "landing_token")
    env = {**environ, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
           "ADMIN_TOKEN": secret(data_dir, "admin_token"), "INGEST_KEY": secret(data_dir, "ingest_key"),
           "API_TOKENS": ",".join(filter(None, [f"landing:viewer:{landing_token}", environ.get("API_TOKENS")])),
           "AB_SERVICE_TOKEN": landing_token,
           "SECRET_KEY": secret(data_dir, "secret_key"),
           "AB_SERVICE_URL": by_name["ab_service"].url, "METRICS_SERVICE_URL": by_name["metrics_service"].url,
           "LANDING_URL": by_name["landing"].url}
    lock.write(f"pid {os.getpid()}, dashboard {by_name['dashboard'].url}\n")
    lock.flush()

    stopping = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    processes: dict[str, subprocess.Popen] = {}
    print(f"Starting {', '.join(s.name for s in stack)} (logs in {logs}) ...", flush=True)
    try:
        for service in stack:
            with open(logs / f"{service.name}.log", "ab") as log:
                processes[service.name] = subprocess.Popen(
                    service.command(), cwd=ROOT, env={**env, "PORT": str(service.port)}, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
        waiting = list(stack)
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while waiting and not stopping:
            for service in list(waiting):
                if processes[service.name].poll() is not None:
                    print(f"{service.name} stopped while starting; the end of {logs / service.name}.log:\n"
                          f"{tail(logs / f'{service.name}.log')}", file=sys.stderr)
                    return 1
                if healthy(service):
                    print(f"  {service.name} is up", flush=True)
                    waiting.remove(service)
            if time.monotonic() > deadline:
                print(f"Not answering after {HEALTH_TIMEOUT_SECONDS} s: {', '.join(s.name for s in waiting)} "
                      f"(see {logs})", file=sys.stderr)
                return 1
            time.sleep(0.3)
        if stopping:
            return 0
        print(f"\nLanding Lab is running:\n{describe(stack)}\n\n"
              f"  admin token      in {data_dir / 'admin_token'} (sign in to the dashboard with it, or with\n"
              f"                   a token of API_TOKENS=name:role:token,...)\n"
              f"  sample data      `make demo` in another terminal sends two weeks of traffic\n\n"
              "Ctrl-C stops everything.", flush=True)
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} stopped unexpectedly; the end of its log:\n{tail(logs / f'{name}.log')}",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        stop(processes)
        if stopping:
            print("\nStopped.", flush=True)
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
