"""How the landing page talks to ab_service: assignment and toggles, with local fallbacks."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import requests

from core.bucketing import assign_variant

log = logging.getLogger(__name__)

# What the page shows before ab_service has ever answered (same seed as ab_service).
DEFAULT_TOGGLES: dict[str, Any] = {
    "show_promo_section": True,
    "enable_signup_form": True,
    "show_testimonials": True,
    "cta_text": "Get started",
}
DEFAULT_EXPERIMENT = {"key": "landing", "variants": ["A", "B"], "weights": [0.5, 0.5], "coverage": 1.0}


class AbClient:
    """Asks ab_service, remembers answers, and never leaves a visitor without a variant."""

    def __init__(self, base_url: str, session: requests.Session, config_ttl: float = 1.0, memory: int = 50_000):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.config_ttl = config_ttl
        self._toggles: dict[str, Any] = dict(DEFAULT_TOGGLES)
        self._toggles_at = float("-inf")
        self._known: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._memory = memory
        self._lock = threading.Lock()

    def assignment(self, visitor_id: str, experiment: str = "landing") -> dict[str, Any]:
        """{"variant", "in_experiment", "source"}: ab_service's answer, else the last one, else the shared hash."""
        key = (experiment, visitor_id)
        try:
            response = self.session.get(
                f"{self.base_url}/assign", params={"visitor_id": visitor_id, "experiment": experiment}
            )
            response.raise_for_status()
            body = response.json()
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
        variant = assign_variant(
            visitor_id, DEFAULT_EXPERIMENT["variants"], DEFAULT_EXPERIMENT["weights"],
            DEFAULT_EXPERIMENT["coverage"], experiment,
        )
        return {"variant": variant or "A", "in_experiment": variant is not None, "source": "hash"}

    def toggles(self) -> dict[str, Any]:
        """Current toggles, cached for config_ttl seconds; the last known values when ab_service is down."""
        now = time.monotonic()
        if now - self._toggles_at < self.config_ttl:
            return self._toggles
        try:
            response = self.session.get(f"{self.base_url}/config")
            response.raise_for_status()
            fresh = response.json()
            if isinstance(fresh, dict):
                self._toggles = {**DEFAULT_TOGGLES, **fresh}
        except (requests.RequestException, ValueError) as exc:
            log.warning("ab_service config unavailable, keeping last known toggles: %s", exc)
        self._toggles_at = now
        return self._toggles
