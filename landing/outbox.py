"""A durable outbox: what the landing service reports is committed locally first, then delivered.

Two kinds of rows share the table, each with its receiver: events go to metrics_service (`POST
/events`), visitors' new assignments to ab_service (`POST /assignments`, which stores each one only if
it is new). Every worker process runs a sender per receiver; the senders of one receiver take turns
on a lock (a file lock beside the SQLite file, a PostgreSQL advisory lock), so a batch normally goes
out once. A row is identified by the id it is sent with (an event's event_id; for an assignment a
uuid5 of experiment and visitor) and deleted by that id once the receiver has stored the batch (2xx),
so whatever a sender deletes is stored: the receivers keep each event id and each (experiment,
visitor) once, and a batch sent twice (after a crash, or by two instances) counts once. Delivery
retries with backoff while a receiver is down, and one receiver's outage does not hold up the other.
Rows a receiver rejects (400 naming them, e.g. an event timestamp older than metrics_service accepts)
are kept in the table with its reason in `rejected`, logged as errors and not sent again.

On the request path the cost is one shared commit: the page views of one moment enqueue in one
transaction (core.group_commit), each returning once its rows are committed. A sender that finds
less than a full batch waits LINGER_SECONDS before the next one, so a steady stream of page views
goes out in a few large batches (one receiver transaction each) rather than many small ones.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import Engine, delete, func, select, update

from core.db import exclusive, now_millis, placeholders, run_write, write_transaction
from core.group_commit import GroupCommit
from landing.store import outbox

log = logging.getLogger(__name__)

EVENTS, ASSIGNMENTS = "events", "assignments"
BATCH_SIZE = 500
BATCH_BYTES = 128 * 1024  # well below the receivers' default request body limit
MAX_BACKOFF_SECONDS = 10.0
LINGER_SECONDS = 0.25  # after a batch that emptied the queue, before the next (never longer than the interval)
# Fixed for good: an assignment's row id is derived from it, so a re-queued assignment is the same row.
QUEUED = ("event_id", "destination", "payload", "created_at")  # the columns enqueue writes
ASSIGNMENT_NAMESPACE = uuid.UUID("6f1c2b4e-8d3a-5e7f-9a0b-1c2d3e4f5a6b")


@dataclass
class Destination:
    """Where one kind of row goes: POSTed as a JSON array to `url` with `session` (and its headers)."""

    name: str
    url: str
    session: requests.Session

    @property
    def lock(self) -> str:
        """The named lock the senders of every worker take turns on."""
        return f"outbox-sender-{self.name}"


def assignment_row_id(experiment: str, visitor_id: str) -> str:
    return str(uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{experiment}:{visitor_id}"))


class Outbox:
    def __init__(self, engine: Engine, destinations: Iterable[Destination], max_backoff: float = MAX_BACKOFF_SECONDS):
        self.engine = engine
        self.destinations = {destination.name: destination for destination in destinations}
        self.max_backoff = max_backoff
        self._wake = {name: threading.Event() for name in self.destinations}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._group: GroupCommit[None] = GroupCommit(self._insert)

    def enqueue(self, events: Sequence[dict[str, Any]] = (), assignments: Sequence[Mapping[str, str]] = ()) -> None:
        """Commit events (wire-format dicts with an event_id) and new assignments ({"experiment",
        "visitor_id", "variant"}) locally, in one transaction; delivery happens in the background.
        An event_id, or an (experiment, visitor) pair, already queued is kept once."""
        now = now_millis()
        rows = [(e["event_id"], EVENTS, json.dumps(e), now) for e in events]
        rows += [(assignment_row_id(a["experiment"], a["visitor_id"]), ASSIGNMENTS, json.dumps(dict(a)), now)
                 for a in assignments]
        if not rows:
            return
        self._group.submit(rows)
        for name in {row[1] for row in rows}:
            if name in self._wake:
                self._wake[name].set()

    def _insert(self, groups: list[Sequence[tuple[str, str, str, int]]]) -> list[None]:
        """Several callers' rows in one transaction (run again after a deadlock), in id order so that
        concurrent writers of the same ids lock them in the same order."""
        rows = sorted(row for group in groups for row in group)

        def write(conn) -> None:
            conn.exec_driver_sql(f"INSERT INTO {outbox.name} ({', '.join(QUEUED)}) VALUES {placeholders(conn, 4)} "
                                 "ON CONFLICT DO NOTHING", rows)

        run_write(self.engine, write)
        return [None] * len(groups)

    def pending(self, destination: str = EVENTS) -> int:
        """Rows waiting for delivery."""
        return self._count(destination, outbox.c.rejected.is_(None))

    def rejected(self, destination: str = EVENTS) -> int:
        """Rows the receiver rejected, kept in the table."""
        return self._count(destination, outbox.c.rejected.is_not(None))

    def _count(self, destination: str, condition) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)
                                .where(outbox.c.destination == destination, condition)).scalar_one()

    def _next_batch(self, destination: str) -> tuple[list[tuple[str, str]], bool]:
        """The oldest deliverable rows as (id, payload), at most BATCH_SIZE and about BATCH_BYTES, and
        whether more were waiting."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.event_id, outbox.c.payload)
                                .where(outbox.c.destination == destination, outbox.c.rejected.is_(None))
                                .order_by(outbox.c.created_at, outbox.c.event_id).limit(BATCH_SIZE)).all()
        batch, size = [], 0
        for row_id, payload in rows:
            size += len(payload) + 1
            if batch and size > BATCH_BYTES:
                break
            batch.append((row_id, payload))
        return batch, len(batch) < len(rows) or len(rows) == BATCH_SIZE

    def flush_once(self, destination: str = EVENTS) -> int:
        """Send one batch; returns how many rows left the queue (delivered or set aside as rejected).
        Raises requests errors when delivery fails; the rows stay queued."""
        return self._flush(destination)[0]

    def _flush(self, destination: str) -> tuple[int, bool]:
        """flush_once, and whether more rows were waiting behind the batch."""
        target = self.destinations[destination]
        with exclusive(self.engine, target.lock):
            batch, more = self._next_batch(destination)
            if not batch:
                return 0, False
            # The payloads are the JSON objects as queued: sent as one array without decoding them.
            body = ("[" + ",".join(payload for _, payload in batch) + "]").encode()
            response = target.session.post(target.url, data=body, headers={"Content-Type": "application/json"})
            if response.status_code == 400:
                return self._set_aside(target, batch, response), True
            response.raise_for_status()
            with write_transaction(self.engine) as conn:
                conn.execute(delete(outbox).where(outbox.c.event_id.in_([row_id for row_id, _ in batch])))
            return len(batch), more

    def _set_aside(self, target: Destination, batch: list[tuple[str, str]], response: requests.Response) -> int:
        """Mark the rows the receiver named in its 400 answer as rejected (kept, logged, not re-sent);
        the rest of the batch goes out with the next one. Without a per-row answer nothing is marked."""
        reasons = _rejections(response, len(batch))
        if not reasons:
            log.error("%s rejected a batch of queued %s; kept: %s", target.url, target.name, response.text[:500])
            response.raise_for_status()
        with write_transaction(self.engine) as conn:
            for index, reason in reasons.items():
                conn.execute(update(outbox).where(outbox.c.event_id == batch[index][0]).values(rejected=reason))
        log.error("%s rejected %d queued %s, kept in the outbox table with the reason in `rejected` (first: %s)",
                  target.url, len(reasons), target.name, next(iter(reasons.values())))
        return len(reasons)

    def flush(self, destination: str = EVENTS) -> int:
        """Deliver everything queued for `destination` now; returns how many rows left the queue."""
        total = 0
        while sent := self.flush_once(destination):
            total += sent
        return total

    def _run(self, destination: str, interval: float) -> None:
        wake = self._wake[destination]
        backoff = interval
        linger = min(LINGER_SECONDS, interval)
        while not self._stop.is_set():
            try:
                sent, more = self._flush(destination)
                backoff = interval
                if more:
                    continue
                if sent:  # the queue is empty: let the next rows gather for a moment
                    self._stop.wait(linger)
                    continue
            except (requests.RequestException, OSError) as exc:
                log.warning("delivery of %s failed, retrying in %.1fs: %s", destination, backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            wake.wait(interval)
            wake.clear()

    def start(self, interval: float = 0.5) -> None:
        """One background sender per destination."""
        if not self._threads:
            self._threads = [threading.Thread(target=self._run, args=(name, interval), name=f"outbox-{name}",
                                              daemon=True) for name in self.destinations]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background senders after one last attempt to deliver what is queued."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        for name in self.destinations:
            try:
                self.flush(name)
            except (requests.RequestException, OSError) as exc:
                log.warning("%s left queued at shutdown (delivered on next start): %s", name, exc)


def _rejections(response: requests.Response, size: int) -> dict[int, str]:
    """{index in the batch: reason} from the receiver's 400 answer; empty unless every problem names
    a row of the batch."""
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
