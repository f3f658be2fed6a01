"""Ingest figures: single events over HTTP against the trivial-POST ceiling, and batches of 500
first-time visitors' events against raw executemany into a plain events table (measured in process)."""
from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from sqlalchemy.engine import make_url

from bench.services import ADMIN_TOKEN, INGEST_KEY, Memory, Servers
from bench.settings import Settings
from bench.wrk import Figure, Round, Target, compare, load
from harness.postgres import Schemas

BATCH = 500
RAW_SQLITE_ROWS = 200_000
RAW_POSTGRES_ROWS = 100_000
ARGS = {"key": INGEST_KEY}


def settled(url: str):
    """A readout of the service at url: it answers once every event acknowledged before it is folded
    into the aggregates, so a figure that calls it after each round counts the folding in its time."""
    def settle() -> None:
        requests.get(f"{url}/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=600).raise_for_status()
    return settle


def single(settings: Settings, data: Path, memory: list[Memory]) -> dict[str, Figure]:
    """metrics_service on SQLite (and on PostgreSQL with settings.database_url) and the ceiling, all
    running at once and loaded in turn; every request one event of a first-time visitor."""
    with Servers(data / "single", memory, "single-event ingest") as servers:
        metrics = servers.gunicorn("metrics_service")
        targets = [Target("SQLite", metrics.url, "events.lua", ARGS, [metrics], settle=settled(metrics.url))]
        if settings.database_url:
            pg = servers.gunicorn("metrics_service", "metrics_service (PostgreSQL)",
                                  DATABASE_URL=servers.schema(settings.database_url))
            targets.append(Target("PostgreSQL", pg.url, "events.lua", ARGS, [pg], settle=settled(pg.url)))
        ceiling = servers.gunicorn("ceiling")
        targets.append(Target("ceiling", ceiling.url, "events.lua", ARGS, [ceiling]))
        return compare(targets, settings)


@dataclass(frozen=True)
class Raw:
    """The baseline's rounds: rows inserted and the seconds they took."""

    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    def __add__(self, other: Raw) -> Raw:
        return Raw(self.rows + other.rows, self.seconds + other.seconds)


def raw_rows(count: int) -> list[tuple]:
    """What the baselines insert: `count` events of first-time visitors, as the events table stores them."""
    now = int(time.time() * 1000)
    return [(str(uuid.uuid4()), "landing", "AB"[n % 2], "page_view", f"raw-{n}", now, None, None)
            for n in range(count)]


COLUMNS = "event_id, experiment, variant, event_type, visitor_id, ts, properties, excluded"


def raw_sqlite(path: Path, count: int = RAW_SQLITE_ROWS) -> Raw:
    """Plain sqlite3 executemany into a fresh events table (WAL), one transaction."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, experiment TEXT, variant TEXT, "
               "event_type TEXT, visitor_id TEXT, ts INTEGER, properties TEXT, excluded TEXT)")
    rows = raw_rows(count)
    started = time.perf_counter()
    with db:
        db.executemany(f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - started
    db.close()
    return Raw(count, elapsed)


def raw_postgres(database_url: str, count: int = RAW_POSTGRES_ROWS) -> Raw:
    """psycopg executemany (pipelined) into a fresh events table in a schema of its own, one transaction."""
    schemas = Schemas(database_url, prefix="bench_")
    try:
        url = make_url(schemas.new_url()).set(drivername="postgresql")
        rows = raw_rows(count)
        with psycopg.connect(url.render_as_string(hide_password=False)) as db:
            db.execute("CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, event_id VARCHAR(36) UNIQUE, "
                       "experiment VARCHAR(64), variant VARCHAR(64), event_type VARCHAR(32), "
                       "visitor_id VARCHAR(128), ts BIGINT, properties TEXT, excluded VARCHAR(32))")
            db.commit()
            started = time.perf_counter()
            with db.cursor() as cursor:
                cursor.executemany(f"INSERT INTO raw_events ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                   rows)
            db.commit()
            return Raw(count, time.perf_counter() - started)
    finally:
        schemas.close()


def batch(settings: Settings, data: Path, memory: list[Memory]) -> dict[str, tuple[Figure, Raw]]:
    """Per backend: metrics_service taking batches of 500 first-time visitors' events from a few
    connections, and raw executemany, measured in alternating rounds."""
    with Servers(data / "batch", memory, "batch ingest") as servers:
        metrics = servers.gunicorn("metrics_service")
        backends = {"SQLite": (Target("SQLite", metrics.url, "batch.lua", {**ARGS, "size": str(BATCH)}, [metrics],
                                      settings.batch_connections, BATCH, settled(metrics.url)),
                               lambda n: raw_sqlite(data / "batch" / f"raw-{n}.db"))}
        if settings.database_url:
            pg = servers.gunicorn("metrics_service", "metrics_service (PostgreSQL)",
                                  DATABASE_URL=servers.schema(settings.database_url))
            backends["PostgreSQL"] = (Target("PostgreSQL", pg.url, "batch.lua", {**ARGS, "size": str(BATCH)}, [pg],
                                             settings.batch_connections, BATCH, settled(pg.url)),
                                      lambda n: raw_postgres(settings.database_url))
        for target, _ in backends.values():
            load(target, settings, 1)  # warm-up
        runs: dict[str, list[Round]] = {name: [] for name in backends}
        raws: dict[str, Raw] = {name: Raw(0, 0.0) for name in backends}
        for n in range(settings.rounds):
            for name, (target, raw) in backends.items():
                runs[name].append(load(target, settings))
                raws[name] += raw(n)
        return {name: (Figure(name, tuple(runs[name]), BATCH), raws[name]) for name in backends}
