"""Flags and experiments as ab_service last served them, kept fresh in the background.

No page view waits on ab_service: each worker process runs a thread that fetches `GET /flags` and
`GET /experiments` every REFRESH_SECONDS and swaps in the new copy once both answered with something
that evaluates; a failed fetch keeps the last good copy. That copy is also written to the landing
database, so a process started while ab_service is down shows visitors what it showed them before.
Until ab_service has ever answered, core's seed data (the default flags, the built-in `landing`
experiment) stands in.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from core.db import dialect_insert, now_millis, write_transaction
from core.evaluation import evaluate
from core.experiments import LANDING_EXPERIMENT, Experiment
from core.flags import DEFAULT_FLAGS
from landing.store import definitions

log = logging.getLogger(__name__)

SOURCE = "ab_service"


@dataclass(frozen=True)
class Definitions:
    flags: tuple[Mapping[str, Any], ...]  # core's default flags, overlaid by ab_service's of the same key
    experiments: tuple[Experiment, ...]
    known: bool  # served by ab_service (now or before a restart), not core's seed data

    @property
    def experiment_keys(self) -> dict[str, Experiment]:
        return {experiment.key: experiment for experiment in self.experiments}


def with_defaults(flags: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """ab_service's flags, plus core's default of every flag the page uses that it does not serve."""
    served = {flag["key"] for flag in flags}
    return (*flags, *(flag for flag in DEFAULT_FLAGS if flag["key"] not in served))


SEED = Definitions(with_defaults(()), (LANDING_EXPERIMENT,), known=False)


def parse(body: Any) -> Definitions:
    """{"flags": [...], "experiments": [...]} as ab_service serves them; ValueError when it does not
    look like that or does not evaluate (the last good copy stays then)."""
    try:
        flags, experiments = body["flags"], body["experiments"]
        if not isinstance(flags, list) or not isinstance(experiments, list):
            raise TypeError("flags and experiments must be lists")
        parsed = Definitions(with_defaults(flags), tuple(Experiment.from_dict(e) for e in experiments), known=True)
        for experiment in parsed.experiments:
            if not experiment.variants:
                raise ValueError(f"experiment {experiment.key!r} has no variants")
        evaluate(parsed.flags, parsed.experiments, {"id": "probe"}, {})
        return parsed
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        raise ValueError(f"unusable flags or experiments: {exc!r}") from exc


class Refresher:
    """The current definitions for this process, refreshed by a thread of its own."""

    def __init__(self, engine: Engine, ab_url: str, session: requests.Session, interval: float):
        self.engine = engine
        self.ab_url = ab_url.rstrip("/")
        self.session = session
        self.interval = interval
        self._current = SEED
        self._saved: str | None = None  # the body last written to or read from the database
        self._failing = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def current(self) -> Definitions:
        """What the page evaluates now; never waits on ab_service."""
        if self.interval > 0 and self._pid != os.getpid():
            self.start()  # a process forked after start (gunicorn --preload) has no thread yet
        return self._current

    def load(self) -> None:
        """Take the copy an earlier process saved, if any (before the first fetch of this one)."""
        try:
            with self.engine.connect() as conn:
                body = conn.execute(select(definitions.c.body).where(definitions.c.source == SOURCE)).scalar()
        except SQLAlchemyError as exc:
            log.warning("could not read the saved flags and experiments: %s", exc)
            return
        if body is None:
            return
        try:
            self._current = parse(json.loads(body))
            self._saved = body
        except ValueError as exc:
            log.warning("ignoring the saved flags and experiments: %s", exc)

    def _fetch(self) -> dict[str, Any]:
        body = {}
        for name in ("flags", "experiments"):
            response = self.session.get(f"{self.ab_url}/{name}")
            response.raise_for_status()
            body[name] = response.json()[name]
        return body

    def refresh(self) -> bool:
        """Fetch once; True when the copy now matches what ab_service serves."""
        try:
            body = self._fetch()
            fresh = parse(body)
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            if not self._failing:
                log.warning("ab_service's flags and experiments unavailable, keeping the last good copy: %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("ab_service's flags and experiments available again")
        self._failing = False
        self._current = fresh
        self._save(json.dumps(body, sort_keys=True, separators=(",", ":")))
        return True

    def _save(self, body: str) -> None:
        if body == self._saved:
            return
        insert = dialect_insert(self.engine, definitions)
        statement = insert.on_conflict_do_update(index_elements=[definitions.c.source],
                                                 set_={"body": insert.excluded.body,
                                                       "fetched_at": insert.excluded.fetched_at})
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(statement, {"source": SOURCE, "body": body, "fetched_at": now_millis()})
        except SQLAlchemyError as exc:
            log.warning("could not save the flags and experiments: %s", exc)
            return
        self._saved = body

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Start this process's refresher thread (again in a forked child, whose parent's thread is gone)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="definitions", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)
        self._thread = None
        self._pid = None
