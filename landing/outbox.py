"""A durable outbox: events are committed locally first, then delivered to metrics_service.

Every worker process of an instance runs a sender; they take turns on a lock (a file lock beside the
SQLite file, a PostgreSQL advisory lock), so a batch normally goes out once. A row is identified by
the event_id it is sent with and deleted by that id once metrics_service has stored the batch (202),
so whatever a sender deletes is stored: metrics_service keeps each event_id once, and a batch sent
twice (after a crash, or by two instances) counts once. Delivery retries with backoff while
metrics_service is down. Events it rejects (400, e.g. a timestamp older than it accepts) are kept in
the table with its reason in `rejected`, logged as errors and not sent again.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, Text, delete, func, select, update

from core.db import exclusive, insert_ignore, now_millis, write_transaction
from core.migrate import upgrade

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_landing"
SENDER_LOCK = "outbox-sender"

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False, index=True),
    Column("rejected", Text, nullable=True),  # metrics_service's reason; such rows are kept, not re-sent
)

BATCH_SIZE = 500
BATCH_BYTES = 128 * 1024  # well below metrics_service's default request body limit
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
        self.max_backoff = max_backoff

    def init_schema(self) -> None:
        """Create or upgrade the table; the workers starting together take turns (see core.migrate)."""
        upgrade(self.engine, MIGRATIONS, VERSION_TABLE)

    def enqueue(self, events: Sequence[dict[str, Any]]) -> None:
        """Commit events (wire-format dicts with an event_id) locally; delivery happens in the background.
        An event_id already queued is kept once."""
        now = now_millis()
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert_ignore(conn, outbox),
                [{"event_id": e["event_id"], "payload": json.dumps(e), "created_at": now} for e in events],
            )
        self._wake.set()

    def pending(self) -> int:
        """Events waiting for delivery."""
        return self._count(outbox.c.rejected.is_(None))

    def rejected(self) -> int:
        """Events metrics_service rejected, kept in the table."""
        return self._count(outbox.c.rejected.is_not(None))

    def _count(self, condition) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox).where(condition)).scalar_one()

    def _next_batch(self) -> list[tuple[str, str]]:
        """The oldest deliverable rows as (event_id, payload), at most BATCH_SIZE and about BATCH_BYTES."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.event_id, outbox.c.payload).where(outbox.c.rejected.is_(None))
                                .order_by(outbox.c.created_at, outbox.c.event_id).limit(BATCH_SIZE)).all()
        batch, size = [], 0
        for event_id, payload in rows:
            size += len(payload) + 1
            if batch and size > BATCH_BYTES:
                break
            batch.append((event_id, payload))
        return batch

    def flush_once(self) -> int:
        """Send one batch; returns how many events left the queue (delivered or set aside as rejected).
        Raises requests errors when delivery fails; the events stay queued."""
        with exclusive(self.engine, SENDER_LOCK):
            batch = self._next_batch()
            if not batch:
                return 0
            response = self.session.post(self.events_url, json=[json.loads(payload) for _, payload in batch])
            if response.status_code == 400:
                return self._set_aside(batch, response)
            response.raise_for_status()
            with write_transaction(self.engine) as conn:
                conn.execute(delete(outbox).where(outbox.c.event_id.in_([event_id for event_id, _ in batch])))
            return len(batch)

    def _set_aside(self, batch: list[tuple[str, str]], response: requests.Response) -> int:
        """Mark the events metrics_service named in its 400 answer as rejected (kept, logged, not re-sent);
        the rest of the batch goes out with the next one. Without a per-event answer nothing is marked."""
        reasons = _rejections(response, len(batch))
        if not reasons:
            log.error("metrics_service rejected a batch of queued events; kept: %s", response.text[:500])
            response.raise_for_status()
        with write_transaction(self.engine) as conn:
            for index, reason in reasons.items():
                conn.execute(update(outbox).where(outbox.c.event_id == batch[index][0]).values(rejected=reason))
        log.error("metrics_service rejected %d queued event(s), kept in the outbox table with the reason in "
                  "`rejected` (first: %s)", len(reasons), next(iter(reasons.values())))
        return len(reasons)

    def flush(self) -> int:
        """Deliver everything queued now; returns how many events left the queue."""
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


def _rejections(response: requests.Response, size: int) -> dict[int, str]:
    """{index in the batch: reason} from metrics_service's 400 answer; empty unless every problem names
    an event of the batch."""
    try:
        problems = response.json().get("errors")
    except (ValueError, AttributeError):
        return {}
    reasons: dict[int, list[str]] = {}
    for problem in problems if isinstance(problems, list) else []:
        index = problem.get("index") if isinstance(problem, dict) else None
        if not isinstance(index, int) or not 0 <= index < size:
            return {}
        reasons.setdefault(index, []).append(f"{problem.get('field')}: {problem.get('message')}")
    return {index: "; ".join(messages) for index, messages in reasons.items()}
