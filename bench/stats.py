"""Figure 4: /stats and experiment results latency with 100k, 1M and 10M events bulk-loaded."""
from __future__ import annotations

import random
import statistics
import time
import uuid
from pathlib import Path

import requests

from bench.common import free_port, gunicorn
from core.db import make_engine
from metrics_service.store import MetricsStore, events

CHUNK = 50_000


def bulk_load(path: Path, count: int, seed: int = 1) -> None:
    """Write `count` raw events straight into a fresh database, then rebuild the aggregates once."""
    store = MetricsStore(make_engine(f"sqlite:///{path}"))
    store.init_schema()
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    visitors = max(count // 8, 1)
    types = ["page_view"] * 6 + ["cta_click"] * 3 + ["form_submit"]
    with store.engine.begin() as conn:
        for start in range(0, count, CHUNK):
            rows = []
            for n in range(start, min(start + CHUNK, count)):
                visitor = rng.randrange(visitors)
                rows.append({"event_id": str(uuid.UUID(int=n + 1)), "experiment": "landing",
                             "variant": "AB"[visitor % 2], "event_type": types[n % 10],
                             "visitor_id": f"v{visitor}", "ts": now - rng.randrange(30 * 86_400_000),
                             "properties": None, "excluded": None})
            conn.execute(events.insert(), rows)
    store.rebuild_aggregates()
    store.engine.dispose()


def median_latency(url: str, params: dict, repeat: int = 30) -> float:
    session = requests.Session()
    session.get(url, params=params, timeout=60).raise_for_status()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.get(url, params=params, timeout=60).raise_for_status()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(data: Path, count: int) -> dict[str, float]:
    path = data / f"stats-{count}.db"
    started = time.perf_counter()
    bulk_load(path, count)
    loaded = time.perf_counter() - started
    port = free_port()
    with gunicorn("metrics_service:create_app()", port, {"DATABASE_URL": f"sqlite:///{path}"}):
        base = f"http://127.0.0.1:{port}"
        return {
            "load_seconds": loaded,
            "stats_ms": median_latency(f"{base}/stats", {"experiment": "landing"}),
            "results_ms": median_latency(f"{base}/experiments/landing/results",
                                         {"metric": "form_submit", "weights": "A:0.5,B:0.5"}),
        }
