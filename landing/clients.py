"""How the landing page talks to ab_service: assignment, experiments and flags, with local fallbacks."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import requests

from core.bucketing import decide
from core.flags import default_off_value, resolve_all

log = logging.getLogger(__name__)

# What the page uses before ab_service has ever answered (the same seed data as ab_service).
DEFAULT_FLAG_VALUES: dict[str, tuple[str, Any]] = {
    "show_promo_section": ("boolean", True),
    "enable_signup_form": ("boolean", True),
    "show_testimonials": ("boolean", True),
    "cta_text": ("string", "Get started"),
    "hero_headline": ("string", ""),
    "accent_color": ("color", "#3b5bdb"),
    "promo_discount_percent": ("number", 20),
}
DEFAULT_FLAGS = [
    {"key": key, "type": kind, "value": value, "off_value": default_off_value(kind, value), "rollout": 1.0}
    for key, (kind, value) in DEFAULT_FLAG_VALUES.items()
]
DEFAULT_EXPERIMENT = {
    "key": "landing",
    "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}],
    "coverage": 1.0,
    "seed": None,
    "status": "running",
}


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
        self._flags = Cached(self._fetch_flags, DEFAULT_FLAGS, config_ttl)
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

    def experiment(self, key: str) -> dict[str, Any]:
        """The experiment's definition, refreshed every few seconds; the default for `landing` until known."""
        if key not in self._experiments:
            initial = DEFAULT_EXPERIMENT if key == "landing" else None
            self._experiments[key] = Cached(lambda: self._get_json(f"/experiments/{key}"), initial,
                                            max(self.config_ttl, 5.0))
        return self._experiments[key].get()

    def assignment(self, visitor_id: str, experiment: str = "landing") -> dict[str, Any]:
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
        return {**local_assignment(definition or DEFAULT_EXPERIMENT, visitor_id), "source": "hash"}

    def flags_for(self, visitor_id: str | None) -> dict[str, Any]:
        """Flag values for one visitor (rollouts resolved with the shared hash), cached for config_ttl."""
        return resolve_all(self._flags.get(), visitor_id)


def local_assignment(experiment: dict[str, Any], visitor_id: str) -> dict[str, Any]:
    """The assignment ab_service would make for a visitor it has not stored yet."""
    variant, in_experiment, _ = decide(
        visitor_id,
        [v["name"] for v in experiment["variants"]],
        [float(v["weight"]) for v in experiment["variants"]],
        float(experiment.get("coverage", 1.0)),
        experiment.get("seed") or experiment["key"],
        experiment.get("status", "running"),
    )
    return {"variant": variant, "in_experiment": in_experiment}
