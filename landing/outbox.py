"""A durable outbox: events are committed locally first, then delivered to metrics_service.

Delivery retries with exponential backoff while metrics_service is down; metrics_service
deduplicates by event_id, so a batch sent twice (after a crash or by two workers) counts once.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import requests
from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, delete, func, select

from core.db import insert_ignore, now_millis

log = logging.getLogger(__name__)

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 10.0


class Outbox:
    def __init__(self, engine: Engine, metrics_url: str, session: requests.Session,
                 max_backoff: float = MAX_BACKOFF_SECONDS):
        self.engine = engine
        self.events_url = metrics_url.rstrip("/") + "/events"
        self.session = session
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self.max_backoff = max_backoff

    def init_schema(self) -> None:
        metadata.create_all(self.engine)

    def enqueue(self, events: Sequence[dict[str, Any]]) -> None:
        """Commit events (wire-format dicts with an event_id) locally; delivery happens in the background."""
        now = now_millis()
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignore(conn, outbox),
                [{"event_id": e["event_id"], "payload": json.dumps(e), "created_at": now} for e in events],
            )
        self._wake.set()

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)).scalar_one()

    def flush_once(self) -> int:
        """Send one batch; returns how many were delivered. Raises requests errors when delivery fails."""
        with self._flush_lock:
            with self.engine.connect() as conn:
                rows = conn.execute(select(outbox.c.id, outbox.c.payload).order_by(outbox.c.id).limit(BATCH_SIZE)).all()
            if not rows:
                return 0
            response = self.session.post(self.events_url, json=[json.loads(r.payload) for r in rows])
            if response.status_code == 400:
                # Events are validated with the same schema before they are queued, so this means a
                # version mismatch: keep them and say so loudly rather than dropping anything.
                log.error("metrics_service rejected queued events: %s", response.text[:500])
                response.raise_for_status()
            response.raise_for_status()
            with self.engine.begin() as conn:
                conn.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
            return len(rows)

    def flush(self) -> int:
        """Deliver everything queued now; returns how many were delivered."""
        total = 0
        while sent := self.flush_once():
            total += sent
        return total

    def _run(self, interval: float) -> None:
        backoff = interval
        while not self._stop.is_set():
            try:
                if self.flush_once():
                    backoff = interval
                    continue
                backoff = interval
            except (requests.RequestException, OSError) as exc:
                log.warning("event delivery failed, retrying in %.1fs: %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self._wake.wait(interval)
            self._wake.clear()

    def start(self, interval: float = 0.5) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval,), name="outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background sender after one last attempt to deliver what is queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.flush()
        except (requests.RequestException, OSError) as exc:
            log.warning("events left queued at shutdown (delivered on next start): %s", exc)
