"""Figure 4: /stats and experiment results latency with 100k, 1M and 10M events bulk-loaded."""
from __future__ import annotations

import random
import sqlite3
import statistics
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.common import free_port, gunicorn
from core.db import make_engine
from metrics_service.store import MetricsStore

CHUNK = 50_000


def bulk_load(path: Path, count: int, seed: int = 1) -> None:
    """Write `count` raw events straight into a fresh database, then rebuild the aggregates once.

    Traffic as a landing page sees it: about eight events per visitor (six page views, three CTA
    clicks, one form submission in ten events), each visitor's within half an hour of a first visit
    that falls anywhere in the last 30 days, two variants."""
    store = MetricsStore(make_engine(f"sqlite:///{path}"))
    store.init_schema()
    store.engine.dispose()
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    visitors = max(count // 8, 1)
    arrival = [now - 30 * 86_400_000 + rng.randrange(30 * 86_400_000 - 1_800_000) for _ in range(visitors)]
    types = ["page_view"] * 6 + ["cta_click"] * 3 + ["form_submit"]
    db = sqlite3.connect(path)
    with db:
        for start in range(0, count, CHUNK):
            rows = []
            for n in range(start, min(start + CHUNK, count)):
                visitor = rng.randrange(visitors)
                rows.append((str(uuid.UUID(int=n + 1)), "landing", "AB"[visitor % 2], types[n % 10], f"v{visitor}",
                             arrival[visitor] + rng.randrange(1_800_000)))
            db.executemany("INSERT INTO events (event_id, experiment, variant, event_type, visitor_id, ts) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.close()
    store = MetricsStore(make_engine(f"sqlite:///{path}"))
    store.rebuild_aggregates()
    store.engine.dispose()


QUERIES = {
    "stats_ms": ("/stats", {"experiment": "landing"}),
    "results_ms": ("/experiments/landing/results", {"metric": "form_submit", "weights": "A:0.5,B:0.5"}),
}


def measure(data: Path, sizes: list[int], rounds: int = 40) -> dict[int, dict[str, float]]:
    """Median latency of /stats and results per event count. Every size gets its own server, all
    running at once, and the requests go round-robin across them, so the machine's noise falls on
    every size alike and the ratios between sizes hold."""
    figures: dict[int, dict[str, float]] = {}
    bases = {}
    with ExitStack() as stack:
        for size in sizes:
            path = data / f"stats-{size}.db"
            started = time.perf_counter()
            bulk_load(path, size)
            figures[size] = {"load_seconds": time.perf_counter() - started}
            port = free_port()
            stack.enter_context(gunicorn("metrics_service:create_app()", port, {"DATABASE_URL": f"sqlite:///{path}"}))
            bases[size] = f"http://127.0.0.1:{port}"
        session = requests.Session()
        samples: dict[tuple[int, str], list[float]] = {(size, name): [] for size in sizes for name in QUERIES}
        for round_ in range(rounds + 1):
            for size in sizes:
                for name, (path, params) in QUERIES.items():
                    started = time.perf_counter()
                    session.get(bases[size] + path, params=params, timeout=60).raise_for_status()
                    if round_:  # the first round warms up
                        samples[(size, name)].append(time.perf_counter() - started)
    for (size, name), values in samples.items():
        figures[size][name] = statistics.median(values) * 1000
    return figures
