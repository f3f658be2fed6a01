"""Event retention (EVENT_RETENTION_DAYS): once a day, raw events older than the window are deleted
in small batches, each its own short write transaction, so ingest waits at most one batch.

The aggregates are kept: stats, results and timeseries still count the deleted events (see
MetricsStore.delete_events_before). Every worker of every instance runs a RetentionThread; a lease
in the database (job_leases) lets exactly one of them run the job each day.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from core.db import now_millis
from metrics_service.series import DAY_MS
from metrics_service.store import MetricsStore

log = logging.getLogger(__name__)

JOB = "event_retention"
RUN_EVERY_MS = DAY_MS
LEASE_MS = 10 * 60 * 1000  # renewed after every batch; a holder that dies frees the job after this
BATCH = 1000  # events per delete transaction
PAUSE_SECONDS = 0.02  # between batches: ingest's transactions go first


def cutoff_ms(now_ms: int, days: int) -> int:
    """Events with a time before this are outside the retention window."""
    return now_ms - days * DAY_MS


def purge(store: MetricsStore, cutoff: int, batch: int = BATCH, keep_going: Callable[[], bool] = lambda: True,
          pause: float = PAUSE_SECONDS) -> int:
    """Delete every raw event older than cutoff, batch by batch; how many were deleted. Stops early
    when keep_going() is false (the lease was lost)."""
    store.settle()  # events still queued for folding are kept: the queue is short from here on
    deleted = 0
    while True:
        count = store.delete_events_before(cutoff, batch)
        deleted += count
        if count < batch or not keep_going():
            return deleted
        time.sleep(pause)


def run_if_due(store: MetricsStore, days: int, holder: str, clock: Callable[[], int] = now_millis,
               batch: int = BATCH) -> int | None:
    """Run the job when it is due and this holder wins the lease: how many events it deleted, or
    None when it did not run. It is next due a day after this run started."""
    started = clock()
    if not store.claim_job(JOB, holder, started, LEASE_MS):
        return None
    deleted = purge(store, cutoff_ms(started, days), batch,
                    keep_going=lambda: store.renew_job(JOB, holder, clock(), LEASE_MS))
    store.finish_job(JOB, holder, started + RUN_EVERY_MS)
    log.info("retention: deleted %d raw events older than %d days", deleted, days)
    return deleted


class RetentionThread:
    """A daemon thread that looks every `interval` seconds (first at start) whether the job is due."""

    def __init__(self, store: MetricsStore, days: int, interval: float):
        self.store, self.days, self.interval = store, days, interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-retention", daemon=True)

    def start(self) -> RetentionThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                run_if_due(self.store, self.days, self.holder)
            except SQLAlchemyError:  # the database is away: the lease runs out, and a worker tries again
                log.exception("retention: the run failed; trying again later")
            self._stop.wait(self.interval)
