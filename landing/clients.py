"""How the landing page talks to ab_service: assignment, experiments and flags, with local fallbacks."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import requests

from core.experiments import DEFAULT_EXPERIMENT, LANDING_EXPERIMENT, Experiment, decide
from core.flags import DEFAULT_FLAGS, resolve_all

log = logging.getLogger(__name__)

class Cached:
    """A value fetched at most once per ttl seconds; the last good value survives fetch failures."""

    def __init__(self, fetch, initial, ttl: float):
        self.fetch = fetch
        self.value = initial
        self.ttl = ttl
        self.fetched_at = float("-inf")
        self.lock = threading.Lock()

    def get(self):
        now = time.monotonic()
        if now - self.fetched_at < self.ttl:
            return self.value
        with self.lock:
            if now - self.fetched_at < self.ttl:
                return self.value
            try:
                self.value = self.fetch()
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                log.warning("ab_service unavailable, keeping the last known value: %s", exc)
            self.fetched_at = time.monotonic()
            return self.value


class AbClient:
    """Asks ab_service, remembers answers, and never leaves a visitor without a variant."""

    def __init__(self, base_url: str, session: requests.Session, config_ttl: float = 1.0, memory: int = 50_000):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.config_ttl = config_ttl
        self._flags = Cached(self._fetch_flags, list(DEFAULT_FLAGS), config_ttl)
        self._experiments: dict[str, Cached] = {}
        self._known: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._memory = memory
        self._lock = threading.Lock()

    def _get_json(self, path: str, **params) -> Any:
        response = self.session.get(f"{self.base_url}{path}", params=params or None)
        response.raise_for_status()
        return response.json()

    def _fetch_flags(self) -> list[dict[str, Any]]:
        flags = self._get_json("/flags")["flags"]
        if not isinstance(flags, list):
            raise ValueError("unexpected /flags answer")
        return flags

    def experiment(self, key: str) -> Experiment | None:
        """The experiment's definition, refreshed every few seconds; the built-in one for `landing` until known."""
        if key not in self._experiments:
            initial = LANDING_EXPERIMENT if key == LANDING_EXPERIMENT.key else None
            self._experiments[key] = Cached(lambda: Experiment.from_dict(self._get_json(f"/experiments/{key}")),
                                            initial, max(self.config_ttl, 5.0))
        return self._experiments[key].get()

    def assignment(self, visitor_id: str, experiment: str = DEFAULT_EXPERIMENT) -> dict[str, Any]:
        """{"variant", "in_experiment", "source"}: ab_service's answer, else the last one, else the shared hash."""
        key = (experiment, visitor_id)
        definition = self.experiment(experiment)  # refreshed every few seconds, for the fallback below
        try:
            body = self._get_json("/assign", visitor_id=visitor_id, experiment=experiment)
            answer = {"variant": body["variant"], "in_experiment": body.get("in_experiment", True), "source": "ab"}
            with self._lock:
                self._known[key] = answer
                self._known.move_to_end(key)
                while len(self._known) > self._memory:
                    self._known.popitem(last=False)
            return answer
        except (requests.RequestException, ValueError, KeyError) as exc:
            log.warning("ab_service assignment failed, using local fallback: %s", exc)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return {**known, "source": "memory"}
        fallback = decide(definition or LANDING_EXPERIMENT, {"id": visitor_id})
        return {"variant": fallback.variant, "in_experiment": fallback.in_experiment, "source": "hash"}

    def flags_for(self, visitor_id: str | None) -> dict[str, Any]:
        """Flag values for one visitor (rollouts resolved with the shared hash), cached for config_ttl."""
        return resolve_all(self._flags.get(), visitor_id)

