"""Exports and retention in the configuration production runs: metrics_service under gunicorn with the
shipped config (two workers)."""
from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from core.db import make_engine
from harness.processes import ADMIN_TOKEN, INGEST_KEY, base_env, flask_service, resident_bytes, wait_for
from metrics_service.store import MetricsStore

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_KEY}"}
MILLION = 1_000_000
MEMORY_LIMIT = 150 * 2**20


def bulk_load(url: str, count: int, start_ms: int) -> None:
    """count raw events straight into the store's table in one statement (a recursive CTE counts them
    out): the export reads the raw events only."""
    engine = make_engine(url)
    MetricsStore(engine).init_schema()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO events (event_id, experiment, variant, event_type, visitor_id, ts, properties, excluded) "
            "SELECT printf('00000000-0000-4000-8000-%012d', i), 'landing', CASE i % 2 WHEN 0 THEN 'A' ELSE 'B' END, "
            "CASE i % 3 WHEN 0 THEN 'page_view' WHEN 1 THEN 'cta_click' ELSE 'form_submit' END, "
            "printf('%08x-5d1c-4a2e-9f3b-7c6d5e4f3a2b', i / 3), ? + i, '{\"path\":\"/\"}', NULL FROM n",
            (count, start_ms))
    engine.dispose()


def children(pid: int) -> list[int]:
    """The processes started by any thread of the process."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class PeakMemory:
    """The largest resident set of any of the service's workers, and of any process a worker started
    (the Parquet writer), sampled every 20 ms while the block runs."""

    def __init__(self, service):
        self.service, self.worker, self.child, self._stop = service, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.service.worker_pids():
                self.worker = max(self.worker, resident_bytes(pid))
                self.child = max([self.child, *(resident_bytes(child) for child in children(pid))])

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def loaded_service(tmp_path):
    bulk_load(f"sqlite:///{tmp_path / 'metrics_service.db'}", MILLION, 1_790_000_000_000)
    service = flask_service("metrics_service", tmp_path, base_env(tmp_path)).start()
    yield service
    service.stop()


@pytest.mark.slow
def test_an_export_of_a_million_events_stays_under_150_mb(loaded_service):
    for fmt in ("csv", "ndjson", "parquet"):
        with PeakMemory(loaded_service) as memory, requests.get(
                f"{loaded_service.url}/events/export?format={fmt}", headers=ADMIN, stream=True, timeout=60) as answer:
            assert answer.status_code == 200
            if fmt != "parquet":
                rows = sum(piece.count(b"\n") for piece in answer.iter_content(1 << 16)) - (fmt == "csv")
            else:
                import pyarrow.parquet as pq

                rows = pq.ParquetFile(io.BytesIO(answer.content)).metadata.num_rows
        print(f"{fmt}: {rows} rows, largest worker {memory.worker / 2**20:.1f} MB, "
              f"Parquet writer {memory.child / 2**20:.1f} MB")
        assert rows == MILLION
        assert 0 < memory.worker < MEMORY_LIMIT, f"{fmt}: a worker held {memory.worker / 2**20:.1f} MB"
        assert memory.child < MEMORY_LIMIT, f"{fmt}: the Parquet writer held {memory.child / 2**20:.1f} MB"
        assert (memory.child > 0) == (fmt == "parquet")


def test_retention_runs_in_the_workers(tmp_path):
    """Under gunicorn the workers run the daily job themselves (no cron): started with
    EVENT_RETENTION_DAYS, they delete the older raw events, and the stats still count them."""
    now = datetime.now(UTC)
    rows = [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "page_view",
             "timestamp": (now - timedelta(days=3 if i < 40 else 0)).isoformat()} for i in range(60)]
    env = base_env(tmp_path)
    service = flask_service("metrics_service", tmp_path, env).start()
    try:
        assert requests.post(f"{service.url}/events", json=rows, headers=INGEST, timeout=10).status_code == 202
        before = requests.get(f"{service.url}/stats", timeout=10).json()
    finally:
        service.stop()
    service = flask_service("metrics_service", tmp_path, {**env, "EVENT_RETENTION_DAYS": "2",
                                                          "RETENTION_CHECK_SECONDS": "1"}).start()
    try:
        def exported() -> list[str]:
            answer = requests.get(f"{service.url}/events/export?format=ndjson", headers=ADMIN, timeout=10)
            return [json.loads(line)["visitor_id"] for line in answer.text.splitlines()]

        wait_for(lambda: len(exported()) == 20, timeout=30)
        assert sorted(exported()) == sorted(f"v{i}" for i in range(40, 60))
        assert requests.get(f"{service.url}/stats", timeout=10).json() == before
        assert before["total_events"] == 60
    finally:
        service.stop()
