"""Where the scheduler and the alerts run: two background threads in every ab_service worker (under
gunicorn, `make run` and docker compose alike), started by create_app unless JOBS_AUTOSTART=false.

Every JOBS_INTERVAL_SECONDS the `scheduler` thread carries out due transitions and the `alerts` thread
sends due webhook deliveries; at most once per ALERTS_CHECK_SECONDS across every worker and instance
(the worker that claims the job's row) the alerts thread also checks the running experiments'
readouts. Nothing depends on which worker runs what: each transition and each send is claimed in the
database (see scheduler.py and alerts.py), so any number of workers can run, and any can die.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask

from ab_service import scheduler
from ab_service.alerts import ReadoutCheck, Sender
from ab_service.store import AbStore
from core.db import now_millis
from core.http import make_session
from core.settings import Settings

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, app: Flask, store: AbStore, settings: Settings):
        self.app, self.store, self.settings = app, store, settings
        session = make_session(retries=0, timeout=(2.0, 10.0))
        self.readouts = ReadoutCheck(store, session, settings.metrics_service_url, settings.metrics_service_token,
                                     settings.no_data_hours)
        self.sender = Sender(store, make_session(retries=0), settings.webhook_timeout_seconds,
                             settings.webhook_max_backoff_seconds)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def schedule_tick(self) -> int:
        """Carry out what is due now."""
        with self.app.app_context():
            return scheduler.run_due(self.store, now_millis())

    def alerts_tick(self) -> int:
        """Send what is due now, and check the readouts when this worker claims the check; how many
        deliveries succeeded."""
        now = now_millis()
        delivered = self.sender.run(now)
        if self.store.claim_job("readout-check", int(self.settings.alerts_check_seconds * 1000), now):
            self.readouts.run(now)
        return delivered

    def _loop(self, tick: Callable[[], int]) -> None:
        while not self._stop.is_set():
            try:
                tick()
            except Exception:  # noqa: BLE001 - logged; the thread must outlive a database or network outage
                log.exception("background job %s failed; trying again next tick", tick.__name__)
            self._stop.wait(self.settings.jobs_interval_seconds)

    def start(self) -> None:
        if not self._threads:
            self._threads = [threading.Thread(target=self._loop, args=(tick,), name=name, daemon=True)
                             for name, tick in (("scheduler", self.schedule_tick), ("alerts", self.alerts_tick))]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
