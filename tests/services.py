"""Start the real services as processes on free ports, for integration and browser tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "integration-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    health_path: str = "/health"
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if requests.get(self.url + self.health_path, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy on {self.url} after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, as an orchestrator would, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


@dataclass
class Stack:
    ab: ServiceProcess
    metrics: ServiceProcess
    landing: ServiceProcess
    dashboard: ServiceProcess | None = None

    def all(self) -> list[ServiceProcess]:
        return [s for s in (self.ab, self.metrics, self.landing, self.dashboard) if s is not None]

    def stop(self) -> None:
        for service in reversed(self.all()):
            service.stop()


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    env.update(DATA_DIR=str(data_dir), ADMIN_TOKEN=ADMIN_TOKEN, PYTHONUNBUFFERED="1", **extra)
    return env


def flask_service(name: str, data_dir: Path, env: dict[str, str], port: int | None = None) -> ServiceProcess:
    port = port or free_port()
    return ServiceProcess(
        name=name,
        command=[sys.executable, "-m", name],
        env={**env, "PORT": str(port)},
        port=port,
        log_path=data_dir / f"{name}.log",
    )


def start_stack(data_dir: Path, with_dashboard: bool = True, **extra_env: str) -> Stack:
    """All four services on SQLite files under data_dir, each on its own free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ab_port, metrics_port = free_port(), free_port()
    env = base_env(
        data_dir,
        AB_SERVICE_URL=f"http://127.0.0.1:{ab_port}",
        METRICS_SERVICE_URL=f"http://127.0.0.1:{metrics_port}",
        **extra_env,
    )
    stack = Stack(
        ab=flask_service("ab_service", data_dir, env, ab_port),
        metrics=flask_service("metrics_service", data_dir, env, metrics_port),
        landing=flask_service("landing", data_dir, env),
    )
    if with_dashboard:
        port = free_port()
        stack.dashboard = ServiceProcess(
            name="dashboard",
            command=[
                sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ],
            env=env,
            port=port,
            health_path="/_stcore/health",
            log_path=data_dir / "dashboard.log",
        )
    try:
        for service in stack.all():
            service.start()
    except Exception:
        stack.stop()
        raise
    return stack


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    """Poll until predicate() is truthy and return its value; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
