"""`make run`'s script as a newcomer meets it: it says when every service answers, a second start in the
same folder says the stack is already running (and starts nothing), and Ctrl-C stops everything quietly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from harness.processes import ROOT, free_port, wait_for
from scripts.run import take_lock

pytestmark = pytest.mark.integration
RUN = [sys.executable, str(ROOT / "scripts" / "run.py")]


class Output:
    """A process's output, read as it comes."""

    def __init__(self, process: subprocess.Popen):
        self.text = ""
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process):
        for line in process.stdout:
            self.text += line


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def environment(tmp_path):
    ports = {name: free_port() for name in ("AB_SERVICE_PORT", "METRICS_SERVICE_PORT", "LANDING_PORT",
                                            "DASHBOARD_PORT")}
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PORT", "ADMIN_TOKEN", "INGEST_KEY", "SECRET_KEY")}
    return {**env, "DATA_DIR": str(tmp_path / "data"), **{k: str(v) for k, v in ports.items()}}


def test_start_second_start_and_ctrl_c(environment, tmp_path):
    first = subprocess.Popen(RUN, env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    output = Output(first)
    try:
        wait_for(lambda: "Landing Lab is running" in output.text or first.poll() is not None, timeout=150)
        assert first.poll() is None, output.text
        dashboard = f"http://127.0.0.1:{environment['DASHBOARD_PORT']}"
        assert dashboard in output.text and "admin_token" in output.text
        for variable, path in (("AB_SERVICE_PORT", "/health"), ("METRICS_SERVICE_PORT", "/health"),
                               ("LANDING_PORT", "/health"), ("DASHBOARD_PORT", "/_stcore/health")):
            assert answers(f"http://127.0.0.1:{environment[variable]}{path}"), variable
        for name in ("admin_token", "ingest_key", "landing_token", "secret_key"):  # made once, owner-only
            assert (tmp_path / "data" / name).read_text().strip()
            assert oct((tmp_path / "data" / name).stat().st_mode & 0o777) == "0o600"

        second = subprocess.run(RUN, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert second.returncode == 0
        assert "already running" in second.stdout and f"pid {first.pid}" in second.stdout
        assert dashboard in second.stdout
        assert first.poll() is None  # the second start touched nothing

        first.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert first.wait(40) == 0
        time.sleep(0.2)
        assert "Stopped." in output.text and "Traceback" not in output.text
        for variable in ("AB_SERVICE_PORT", "METRICS_SERVICE_PORT", "LANDING_PORT", "DASHBOARD_PORT"):
            assert not answers(f"http://127.0.0.1:{environment[variable]}/"), variable
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)


def test_a_crashed_run_does_not_block_the_next(environment, tmp_path):
    """The lock is an flock: a run killed with SIGKILL leaves its file behind, not its lock."""
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from scripts.run import take_lock; "
        "from pathlib import Path; held = take_lock(Path(sys.argv[2])); held.write('pid 1\\n'); held.flush(); "
        "print('locked', flush=True); "
        "time.sleep(60)"), str(ROOT), str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        blocked = subprocess.run(RUN, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert "already running" in blocked.stdout
    finally:
        holder.kill()
        holder.wait(10)
    lock = take_lock(data)  # free again once its holder is gone
    lock.close()
