"""Alerts to webhooks: what raises them, how a payload is signed, and the sender that works through the
outbox of deliveries.

Events: `experiment.started` and `experiment.stopped` are raised in the transaction that changes the
status (by an admin or the scheduler). The readout check reads metrics_service for each running
experiment: `srm.detected` when its results report a sample ratio mismatch, `significance.reached`
when their verdict code is `significant` (per variant and metric), `guardrail.breached` for each
guardrail that `GET /experiments/<key>/summary` names as breached (nothing while metrics_service has
no summary), and `no_data` when an experiment running for NO_DATA_HOURS has no exposures in that
time. Each condition raises one alert per run of the experiment (it is recorded; a restart of the
service does not raise it again); `no_data` is raised again after exposures have come back.

Each alert is queued for every webhook subscribed to its event and delivered at least once: a send
is leased (a sender that dies mid-send leaves it to be sent again when the lease ends), a failure is
retried with exponential backoff, and the receiver tells a repeat by the Idempotency-Key header (the
alert's id, the same in every attempt).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from ab_service.schemas import iso_time
from ab_service.store import AbStore
from core.db import now_millis
from core.events import DEFAULT_METRIC, from_millis
from core.experiments import Experiment
from core.http import bearer
from core.webhooks import EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5  # then 10, 20, 40, ... up to WEBHOOK_MAX_BACKOFF_SECONDS
DELIVERIES_PER_TICK = 50


def retry_delay_seconds(attempts: int, cap: float) -> float:
    """How long to wait after the attempts-th failed attempt (1, 2, ...): doubling, at most cap."""
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), cap)


@dataclass(frozen=True)
class Alert:
    event: str
    condition: str  # what makes it once: one alert per condition
    data: dict[str, Any]


def readout_alerts(key: str, run: int, results: Mapping[str, Any]) -> list[Alert]:
    """The alerts a metrics_service readout raises for one run (its start time) of an experiment."""
    found = []
    metric = results.get("metric")
    srm = results.get("srm") or {}
    if srm.get("mismatch"):
        found.append(Alert("srm.detected", f"srm.detected:{key}:{run}",
                           {"p_value": srm.get("p_value"), "expected_weights": srm.get("expected_weights")}))
    if results.get("verdict_code") == "significant":
        variant = results.get("verdict_variant")
        found.append(Alert("significance.reached", f"significance.reached:{key}:{run}:{metric}:{variant}",
                           {"metric": metric, "variant": variant, "verdict": results.get("verdict")}))
    return found


def guardrail_alerts(key: str, run: int, summary: Mapping[str, Any]) -> list[Alert]:
    """guardrail.breached for each metric that metrics_service's summary names as a breached guardrail:
    entries of `guardrails` (or of `metrics` with a `guardrail`) that say `breached: true`."""
    entries = summary.get("guardrails") or [
        {**(metric.get("guardrail") or {}), "metric": metric.get("metric", metric.get("key"))}
        for metric in summary.get("metrics") or [] if isinstance(metric, Mapping) and metric.get("guardrail")]
    return [Alert("guardrail.breached", f"guardrail.breached:{key}:{run}:{entry.get('metric')}", dict(entry))
            for entry in entries if isinstance(entry, Mapping) and entry.get("breached") is True]


def exposed_visitors(results: Mapping[str, Any]) -> int:
    return sum(variant.get("visitors") or 0 for variant in results.get("variants") or [])


class ReadoutCheck:
    """Reads each running experiment's readout from metrics_service and raises what it shows."""

    def __init__(self, store: AbStore, session: requests.Session, metrics_url: str, token: str,
                 no_data_hours: float):
        self.store, self.session, self.metrics_url = store, session, metrics_url
        self.headers = bearer(token)  # reads that may need a credential
        self.no_data_ms = int(no_data_hours * 3600 * 1000)

    def _get(self, path: str, **params: str) -> dict[str, Any] | None:
        """The JSON answer, or None when there is none (404: no such readout)."""
        response = self.session.get(self.metrics_url + path, params=params, headers=self.headers)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def run(self, now: int) -> int:
        """Check every running experiment; how many new alerts were raised."""
        started = self.store.started_at()
        experiments, _ = self.store.list_experiments()
        raised = 0
        for experiment in experiments:
            if experiment.key not in started:
                continue
            key, run = experiment.key, started[experiment.key] or 0
            try:
                raised += self._check(key, run, experiment, now)
            except (requests.RequestException, ValueError) as exc:
                log.warning("readout of experiment %r not checked (metrics_service: %s); next check later", key, exc)
        return raised

    def _check(self, key: str, run: int, experiment: Experiment, now: int) -> int:
        weights = ",".join(f"{v.name}:{v.weight:.10g}" for v in experiment.variants)
        results = self._get(f"/experiments/{key}/results", weights=weights) or {}
        summary = self._get(f"/experiments/{key}/summary", weights=weights,
                            primary=experiment.primary_metric or DEFAULT_METRIC,
                            guardrails=",".join(experiment.guardrail_metrics)) or {}
        alerts = readout_alerts(key, run, results) + guardrail_alerts(key, run, summary)
        raised = sum(self.store.raise_alert(a.event, key, a.data, a.condition) for a in alerts)
        return raised + self._no_data(key, run, weights, now)

    def _no_data(self, key: str, run: int, weights: str, now: int) -> int:
        if not self.no_data_ms or not run or now - run < self.no_data_ms:
            return 0
        since = iso_time(from_millis(now - self.no_data_ms))
        recent = self._get(f"/experiments/{key}/results", weights=weights, since=since) or {}
        condition = f"no_data:{key}:{run}"
        if exposed_visitors(recent):
            self.store.clear_condition(condition)
            return 0
        return int(self.store.raise_alert("no_data", key, {"since": since}, condition))


class Sender:
    """Delivers due alerts to their webhooks, signed, each send leased."""

    def __init__(self, store: AbStore, session: requests.Session, timeout: float, max_backoff: float):
        self.store, self.session, self.timeout, self.max_backoff = store, session, timeout, max_backoff
        self.lease_ms = int((2 * timeout + 5) * 1000)  # longer than a send can take

    def run(self, now: int) -> int:
        """Send what is due; how many were delivered."""
        delivered = 0
        for delivery in self.store.due_deliveries(now, DELIVERIES_PER_TICK):
            if self.store.claim_delivery(delivery, now + self.lease_ms):
                delivered += self._send(delivery, now)
        return delivered

    def _send(self, delivery: dict[str, Any], now: int) -> bool:
        body = delivery["payload"].encode()
        signed_at = now_millis() // 1000  # signed as sent
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(delivery["secret"], body, signed_at),
                   EVENT_HEADER: delivery["event"], IDEMPOTENCY_HEADER: delivery["alert_id"],
                   "User-Agent": "landing-lab-webhooks"}
        try:
            response = self.session.post(delivery["url"], data=body, headers=headers, timeout=self.timeout,
                                         allow_redirects=False)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            error = str(exc)
        if error is None:
            self.store.delivery_done(delivery, now)
            return True
        delay = retry_delay_seconds(delivery["attempts"] + 1, self.max_backoff)
        log.warning("webhook delivery of %s %s to %s failed (%s); next attempt in %.0fs", delivery["event"],
                    delivery["alert_id"], delivery["url"], error, delay)
        self.store.delivery_failed(delivery, now + int(delay * 1000), error)
        return False
