"""/stats, experiment results and results per segment: latency at several event counts, bulk-loaded, on SQLite (and on
PostgreSQL with settings.database_url).

Latency at low concurrency is what an analyst sees, so this figure is timed from Python: one request
at a time over a keep-alive connection, round-robin across every database, the median of each. A
load generator adds nothing at one request in flight (wrk's concurrency is for throughput).
"""
from __future__ import annotations

import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import requests
from sqlalchemy.engine import make_url

from bench.services import ADMIN_TOKEN, Memory, Servers
from bench.settings import Settings
from core.db import make_engine
from metrics_service.store import MetricsStore

CHUNK = 50_000
ROUNDS = 40
EXPERIMENTS = ("landing", "landing", "hero", "pricing")  # half the visitors in `landing`, the rest in two more
COLUMNS = ("event_id", "experiment", "variant", "event_type", "visitor_id", "ts")
QUERIES = {
    "stats": ("/stats", {"experiment": "landing"}),
    "results": ("/experiments/landing/results", {"metric": "form_submit", "weights": "A:0.5,B:0.5"}),
    "segmented": ("/experiments/landing/results", {"metric": "form_submit", "weights": "A:0.5,B:0.5",
                                                   "dimension": "utm_source"}),
    "segment_stats": ("/stats", {"experiment": "landing", "segment": "utm_source:google"}),
}
# Each visitor's context, by visitor number: three devices, five sources (one of them direct traffic).
CONTEXT_COLUMNS = ("event_id", "device", "browser", "utm_source")
DEVICES = (("desktop", "Chrome"), ("mobile", "Mobile Safari"), ("tablet", "Chrome"))
SOURCES = ("google", "newsletter", "linkedin", "bing", None)


def contexts(chunk: list[tuple]) -> list[tuple]:
    """The context rows of a chunk's page views (what the landing page's exposures carry)."""
    rows = []
    for event_id, _, _, event_type, visitor_id, _ in chunk:
        if event_type == "page_view":
            number = int(visitor_id[1:])
            rows.append((event_id, *DEVICES[number % 3], SOURCES[number % 5]))
    return rows


def traffic(count: int, seed: int = 1) -> Iterator[list[tuple]]:
    """`count` raw events in chunks, as a landing page sees them: about eight events per visitor
    (six page views, three CTA clicks, one form submission in ten events), each visitor's within half
    an hour of a first visit that falls anywhere in the last 30 days, two variants, three experiments."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    visitors = max(count // 8, 1)
    arrival = [now - 30 * 86_400_000 + rng.randrange(30 * 86_400_000 - 1_800_000) for _ in range(visitors)]
    types = ["page_view"] * 6 + ["cta_click"] * 3 + ["form_submit"]
    for start in range(0, count, CHUNK):
        chunk = []
        for n in range(start, min(start + CHUNK, count)):
            visitor = rng.randrange(visitors)
            chunk.append((str(uuid.UUID(int=n + 1)), EXPERIMENTS[visitor % 4], "AB"[visitor // 4 % 2], types[n % 10],
                          f"v{visitor}", arrival[visitor] + rng.randrange(1_800_000)))
        yield chunk


def prepare(database_url: str) -> None:
    store = MetricsStore(make_engine(database_url))
    store.init_schema()
    store.engine.dispose()


def rebuild(database_url: str) -> None:
    store = MetricsStore(make_engine(database_url))
    store.rebuild_aggregates()
    store.engine.dispose()


def load_sqlite(path: Path, count: int) -> str:
    """Write `count` raw events straight into a fresh SQLite database, then build the aggregates once."""
    url = f"sqlite:///{path}"
    prepare(url)
    db = sqlite3.connect(path)
    with db:
        for chunk in traffic(count):
            db.executemany(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)", chunk)
            db.executemany(f"INSERT INTO event_context ({', '.join(CONTEXT_COLUMNS)}) VALUES (?, ?, ?, ?)",
                           contexts(chunk))
    db.close()
    rebuild(url)
    return url


def load_postgres(database_url: str, count: int) -> str:
    """The same events copied into the (fresh) schema database_url uses, then the aggregates built once."""
    prepare(database_url)
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as db, db.cursor() as cursor:
        with cursor.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for chunk in traffic(count):
                for row in chunk:
                    copy.write_row(row)
        with cursor.copy(f"COPY event_context ({', '.join(CONTEXT_COLUMNS)}) FROM STDIN") as copy:
            for chunk in traffic(count):
                for row in contexts(chunk):
                    copy.write_row(row)
        cursor.execute("ANALYZE events")
        cursor.execute("ANALYZE event_context")
    rebuild(database_url)
    return database_url


def measure(settings: Settings, data: Path, memory: list[Memory]) -> dict[tuple[str, int], dict[str, float]]:
    """Per (backend, event count): median milliseconds of each query and the seconds the load took.
    Every database gets its own metrics_service, all running at once, and the requests go
    round-robin across them, so the machine's noise falls on every size alike."""
    figures: dict[tuple[str, int], dict[str, float]] = {}
    bases: dict[tuple[str, int], str] = {}
    with Servers(data / "stats", memory, "stats queries") as servers:
        backends = ["SQLite", "PostgreSQL"] if settings.database_url else ["SQLite"]
        for backend in backends:
            for size in settings.sizes:
                started = time.perf_counter()
                if backend == "SQLite":
                    url = load_sqlite(data / "stats" / f"stats-{size}.db", size)
                else:
                    url = load_postgres(servers.schema(settings.database_url), size)
                figures[(backend, size)] = {"load_seconds": time.perf_counter() - started}
                service = servers.gunicorn("metrics_service", f"metrics_service ({backend}, {size:,} events)",
                                           DATABASE_URL=url)
                bases[(backend, size)] = service.url
        samples: dict[tuple[tuple[str, int], str], list[float]] = {
            (key, name): [] for key in bases for name in QUERIES}
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"  # reads need a token
            for round_ in range(ROUNDS + 1):
                for key, base in bases.items():
                    for name, (path, params) in QUERIES.items():
                        started = time.perf_counter()
                        session.get(base + path, params=params, timeout=60).raise_for_status()
                        if round_:  # the first round warms up
                            samples[(key, name)].append(time.perf_counter() - started)
    for (key, name), values in samples.items():
        figures[key][f"{name}_ms"] = statistics.median(values) * 1000
    return figures
