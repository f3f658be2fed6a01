"""Start the real services as processes on free ports, the way production runs them.

The Flask services run under gunicorn with the shipped `gunicorn.conf.py` (two workers, threads),
the dashboard under Streamlit. Used by the integration, fault, load and browser tests, by the
benchmarks and by `make screenshots`.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "integration-admin-token"
INGEST_KEY = "integration-ingest-key"
LANDING_TOKEN = "integration-landing-token"  # the viewer token the landing service reads ab_service with
SECRET_KEY = "integration-secret-key"  # signs the landing service's assignment cookie; tests read it with it
FLASK_APPS = {
    "ab_service": "ab_service:create_app()",
    "metrics_service": "metrics_service:create_app()",
    "landing": "landing:create_app()",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_command(app: str, port: int, *extra: str) -> list[str]:
    """gunicorn with the shipped config file, as in production, bound to the loopback address."""
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{port}", *extra, app]


def streamlit_command(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "server.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    """Poll until predicate() is truthy and return its value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


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
        self.launch()
        self.wait_healthy(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it to answer (wait_healthy does)."""
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # the process has its own copy

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + self.health_path, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float) -> None:
        """Until the health URL answers 200 from this process: on a busy machine another program may
        have taken the port between free_port() and the bind, and its answer would not count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy() and holds_listener(self.pids(), self.port):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy on {self.url} after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the whole process group, as an orchestrator would, then SIGKILL if it lingers."""
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """SIGTERM to the whole process group, without waiting for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def wait_stopped(self, timeout: float = 30.0) -> None:
        """Wait for the process to exit after terminate(); SIGKILL if it lingers."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: a crash, with no chance to clean up."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def kill_worker(self, rng: random.Random | None = None, timeout: float = 30.0) -> int:
        """SIGKILL one gunicorn worker (chosen by rng) and wait until the master has replaced it."""
        workers = wait_for(self.worker_pids, timeout)
        count, victim = len(workers), (rng or random).choice(workers)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in (pids := self.worker_pids()) and len(pids) == count, timeout, interval=0.05)
        return victim

    def pids(self) -> list[int]:
        """The master and its workers (gunicorn) or the one process."""
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *self.worker_pids()]

    def boot_problem(self, workers: int = 2, settle: float = 2.0) -> str | None:
        """Start and wait for the gunicorn workers: None when it booted cleanly, else its log (a worker
        that fails to boot makes the master exit, so it settles a while first). Leaves it running."""
        try:
            self.start()
            wait_for(lambda: len(self.worker_pids()) == workers, timeout=30)
            time.sleep(settle)
        except (RuntimeError, TimeoutError, AssertionError):
            return self.log_path.read_text()
        log = self.log_path.read_text()
        return log if self.process.poll() is not None or "Traceback" in log else None

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master), for faults aimed at one worker."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []


def holds_listener(pids: list[int], port: int) -> bool:
    """Whether one of the processes holds the socket listening on the port (from /proc; True where
    /proc cannot tell)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            return True
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return True
        except OSError:
            continue
    return False


@dataclass
class Stack:
    ab: ServiceProcess
    metrics: ServiceProcess
    landing: ServiceProcess
    dashboard: ServiceProcess | None = None
    data_dir: Path | None = None  # the SQLite files and logs

    def all(self) -> list[ServiceProcess]:
        return [s for s in (self.ab, self.metrics, self.landing, self.dashboard) if s is not None]

    def stop(self) -> None:
        """The landing service and the dashboard first (the landing outbox's last flush still reaches
        metrics_service), then the two services they call; each pair shuts down at the same time."""
        front = [s for s in (self.dashboard, self.landing) if s is not None]
        for group in (front, [self.metrics, self.ab]):
            for service in group:
                service.terminate()
            for service in group:
                service.wait_stopped()


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    # Reads are open (PUBLIC_READS, as on a trusted network) unless extra closes them; the landing
    # service reads flags and experiments with its viewer token either way.
    env.update(DATA_DIR=str(data_dir), ADMIN_TOKEN=ADMIN_TOKEN, INGEST_KEY=INGEST_KEY, SECRET_KEY=SECRET_KEY,
               API_TOKENS=f"landing:viewer:{LANDING_TOKEN}", AB_SERVICE_TOKEN=LANDING_TOKEN, PUBLIC_READS="true",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def flask_service(name: str, data_dir: Path, env: dict[str, str], port: int | None = None) -> ServiceProcess:
    """One Flask service under gunicorn with the shipped config (two workers)."""
    port = port or free_port()
    return ServiceProcess(
        name=name,
        command=gunicorn_command(FLASK_APPS[name], port),
        env={**env, "PORT": str(port)},
        port=port,
        log_path=data_dir / f"{name}.log",
    )


def dashboard_service(data_dir: Path, env: dict[str, str], port: int | None = None) -> ServiceProcess:
    port = port or free_port()
    return ServiceProcess(name="dashboard", command=streamlit_command(port), env=env, port=port,
                          health_path="/_stcore/health", log_path=data_dir / "dashboard.log")


def start_stack(data_dir: Path, with_dashboard: bool = True, **extra_env: str) -> Stack:
    """All four services on SQLite files under data_dir, each on its own free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ab_port, metrics_port, landing_port = free_port(), free_port(), free_port()
    env = base_env(
        data_dir,
        AB_SERVICE_URL=f"http://127.0.0.1:{ab_port}",
        METRICS_SERVICE_URL=f"http://127.0.0.1:{metrics_port}",
        LANDING_URL=f"http://127.0.0.1:{landing_port}",  # the dashboard's preview links
        **extra_env,
    )
    stack = Stack(
        ab=flask_service("ab_service", data_dir, env, ab_port),
        metrics=flask_service("metrics_service", data_dir, env, metrics_port),
        landing=flask_service("landing", data_dir, env, landing_port),
        data_dir=data_dir,
    )
    if with_dashboard:
        stack.dashboard = dashboard_service(data_dir, env)
    # The two services the others call start together, then the landing service (which fetches
    # ab_service's flags and experiments as it starts) and the dashboard together.
    try:
        for group in ([stack.ab, stack.metrics], [s for s in (stack.landing, stack.dashboard) if s is not None]):
            for service in group:
                service.launch()
            for service in group:
                service.wait_healthy(60.0)
    except Exception:
        stack.stop()
        raise
    return stack


@contextmanager
def redis_server(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """A Redis server of its own (Debian's redis-server, nothing saved to disk) for the length of
    the block; yields its URL."""
    port = port or free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_for(answers, timeout=10, interval=0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def running(command: list[str], env: dict[str, str], health_url: str, timeout: float = 60.0,
            log_path: Path | None = None) -> Iterator[ServiceProcess]:
    """Run a server process (quietly, or logging to log_path) until the block ends; wait until
    health_url answers 200."""
    port = int(health_url.split(":")[2].split("/")[0])
    service = ServiceProcess(name=command[-1], command=command, env={**os.environ, **env}, port=port,
                             health_path="/" + health_url.split("/", 3)[3], log_path=log_path)
    service.start(timeout)
    try:
        yield service
    finally:
        service.stop()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (all their threads), from /proc;
    a process that has gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


def resident_bytes(pid: int) -> int:
    """The process's resident set size (VmRSS) from /proc; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
