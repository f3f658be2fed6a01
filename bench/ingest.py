"""Figures 1 and 2: single-event ingest over HTTP, and batch ingest, against their baselines."""
from __future__ import annotations

import itertools
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from bench.common import DURATION, Result, compare, free_port, gunicorn, load, server


def event(n: int) -> dict:
    return {"visitor_id": f"v{n % 50_000}", "variant": "AB"[n % 2], "event_type": "page_view",
            "event_id": str(uuid.UUID(int=n))}


def post_event(port: int):
    url = f"http://127.0.0.1:{port}/events"
    return lambda s, n: s.post(url, json=event(n))


def single(data: Path, postgres_url: str | None = None) -> dict[str, Result]:
    """metrics_service on SQLite (and on PostgreSQL when a URL is given), the HTTP ceiling and the
    naive server, all running at once and loaded in turn."""
    ports = {name: free_port() for name in ("metrics_service", "postgresql", "ceiling", "naive")}
    with ExitStack() as stack:
        stack.enter_context(gunicorn("metrics_service:create_app()", ports["metrics_service"],
                                     {"DATABASE_URL": f"sqlite:///{data / 'single.db'}"}))
        stack.enter_context(gunicorn("bench.ceiling:create_app()", ports["ceiling"], {}))
        stack.enter_context(server([sys.executable, "-m", "bench.naive_server", str(ports["naive"]),
                                    str(data / "naive.db")], {}, f"http://127.0.0.1:{ports['naive']}/health"))
        if postgres_url:
            stack.enter_context(gunicorn("metrics_service:create_app()", ports["postgresql"],
                                         {"DATABASE_URL": postgres_url}))
        else:
            del ports["postgresql"]
        return compare({name: post_event(port) for name, port in ports.items()})


def raw_rows(count: int) -> list[tuple]:
    """The rows the raw baselines insert: the benchmark's events, as the events table stores them."""
    now = int(time.time() * 1000)
    return [(str(uuid.UUID(int=n)), "landing", "AB"[n % 2], "page_view", f"v{n % 50_000}", now, None, None)
            for n in range(count)]


def raw_executemany(data: Path, count: int = 200_000) -> float:
    """Rows per second for plain sqlite3 executemany into the same raw table, one transaction."""
    db = sqlite3.connect(data / "raw.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, experiment TEXT, variant TEXT, "
               "event_type TEXT, visitor_id TEXT, ts INTEGER, properties TEXT, excluded TEXT)")
    rows = raw_rows(count)
    started = time.perf_counter()
    with db:
        db.executemany("INSERT INTO events (event_id, experiment, variant, event_type, visitor_id, ts, properties, "
                       "excluded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def batch_bodies(size: int = 500, up_to_rate: int = 100_000) -> list[bytes]:
    """Request bodies encoded before the clock starts (distinct event ids, enough for `up_to_rate`
    events/s over the run), so the Python clients spend their time sending, not encoding JSON."""
    count = int(up_to_rate * (DURATION + 1) / size) + 1
    return [json.dumps([event(n * size + i) for i in range(size)]).encode() for n in range(count)]


def ingest_batches(database_url: str) -> Result:
    bodies = batch_bodies()
    next_body = itertools.count()
    headers = {"Content-Type": "application/json"}
    port = free_port()
    with gunicorn("metrics_service:create_app()", port, {"DATABASE_URL": database_url,
                                                          "MAX_BODY_BYTES": str(4 * 1024 * 1024)}):
        url = f"http://127.0.0.1:{port}/events"
        return load(lambda s, n: s.post(url, data=bodies[next(next_body) % len(bodies)], headers=headers),
                    concurrency=4, items_per_request=500)


def raw_postgres(database_url: str, count: int = 100_000) -> float:
    """Rows per second for psycopg executemany (pipelined) into the same raw table, one transaction."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql")
    rows = raw_rows(count)
    with psycopg.connect(url.render_as_string(hide_password=False)) as db:
        db.execute("CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, event_id VARCHAR(36) UNIQUE, "
                   "experiment VARCHAR(64), variant VARCHAR(64), event_type VARCHAR(32), visitor_id VARCHAR(128), "
                   "ts BIGINT, properties TEXT, excluded VARCHAR(32))")
        db.commit()
        started = time.perf_counter()
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO raw_events (event_id, experiment, variant, event_type, visitor_id, ts, "
                               "properties, excluded) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
        db.commit()
        return count / (time.perf_counter() - started)


def batch(data: Path) -> tuple[Result, float]:
    return ingest_batches(f"sqlite:///{data / 'batch.db'}"), raw_executemany(data)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for name, r in single(Path(tmp), os.environ.get("BENCH_DATABASE_URL")).items():
            print(name, f"{r.rate:.0f}/s", f"p50 {r.p50_ms:.1f} ms", f"p99 {r.p99_ms:.1f} ms")
