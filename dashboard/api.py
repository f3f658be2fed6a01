"""The dashboard's only way to reach the services: a small HTTP client with cached reads."""
from __future__ import annotations

from typing import Any

import requests
import streamlit as st

from core.http import bearer, make_session
from core.settings import Settings

READ_TTL_SECONDS = 5


class BackendError(Exception):
    """A plain-language message about a service that did not answer as expected, with the field errors
    of a refused write ({"field", "message"}) so a form can show each next to its field."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None, status: int | None = None):
        super().__init__(message)
        self.errors = errors or []
        self.status = status  # the HTTP status of the answer; None when the service did not answer

    @property
    def needs_sign_in(self) -> bool:
        return self.status == 401


@st.cache_resource
def _session() -> requests.Session:
    return make_session(retries=1, timeout=(1.0, 10.0))


def _describe(service: str, response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{service} answered {response.status_code}"
    message = body.get("message") or body.get("error") or str(response.status_code)
    details = "; ".join(
        f"{e['field']}: {e['message']}" if e.get("field") else e.get("message", "")
        for e in body.get("errors") or []
    )
    return f"{service}: {message}" + (f" ({details})" if details else "")


def _field_errors(response: requests.Response) -> list[dict[str, str]]:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [{"field": str(e.get("field") or ""), "message": str(e.get("message") or "")}
            for e in errors if isinstance(e, dict)]


def request_json(service: str, method: str, url: str, token: str | None = None, **kwargs) -> Any:
    try:
        response = _session().request(method, url, headers=bearer(token), **kwargs)
    except requests.RequestException as exc:
        raise BackendError(f"{service} is unreachable at {url.split('?')[0]}: {exc.__class__.__name__}") from exc
    if not response.ok:
        raise BackendError(_describe(service, response), _field_errors(response), response.status_code)
    try:
        return response.json()
    except ValueError as exc:
        raise BackendError(f"{service} sent a response that is not JSON") from exc


@st.cache_data(ttl=READ_TTL_SECONDS, show_spinner=False)
def cached_get(service: str, url: str, params: tuple[tuple[str, str], ...] = (), token: str | None = None) -> Any:
    """A read, cached per token too (what a token may read is the services' answer to it)."""
    return request_json(service, "GET", url, token, params=dict(params))


def _params(**values: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in values.items() if v not in (None, "", "All")))


class Api:
    """Reads are cached for a few seconds; every write clears the cache so the next read is fresh. Reads
    and writes carry the signed-in token (reads without one are answered when PUBLIC_READS=true)."""

    def __init__(self, settings: Settings, token: str | None = None):
        self.ab_service_url = settings.ab_service_url
        self.metrics_service_url = settings.metrics_service_url
        self.token = token

    # ab_service ---------------------------------------------------------------
    def _ab(self, path: str) -> str:
        return self.ab_service_url + path

    def flags(self) -> list[dict[str, Any]]:
        return cached_get("ab_service", self._ab("/flags"), token=self.token)["flags"]

    def experiments(self) -> list[dict[str, Any]]:
        return cached_get("ab_service", self._ab("/experiments"), token=self.token)["experiments"]

    def audit(self) -> list[dict[str, Any]]:
        return request_json("ab_service", "GET", self._ab("/audit"), self.token)["entries"]

    def whoami(self, token: str) -> dict[str, str] | None:
        """{"name", "role"} of the token when ab_service accepts it, else None; BackendError when
        ab_service cannot say."""
        try:
            return request_json("ab_service", "GET", self._ab("/whoami"), token)
        except BackendError as exc:
            if exc.status in (401, 403):
                return None
            raise

    def webhooks(self) -> list[dict[str, Any]]:
        return request_json("ab_service", "GET", self._ab("/webhooks"), self.token)["webhooks"]

    def create_webhook(self, webhook: dict[str, Any]) -> dict[str, Any]:
        """The webhook as created, with its secret (answered this once)."""
        return self._write("POST", "/webhooks", webhook)

    def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        return self._write("DELETE", f"/webhooks/{webhook_id}")

    def _write(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        result = request_json("ab_service", method, self._ab(path), self.token, json=body)
        cached_get.clear()
        return result

    def save_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/config", changes)

    def update_flag(self, key: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", f"/flags/{key}", changes)

    def create_experiment(self, experiment: dict[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/experiments", experiment)

    def update_experiment(self, key: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", f"/experiments/{key}", changes)

    # metrics_service ----------------------------------------------------------
    def _metrics(self, path: str) -> str:
        return self.metrics_service_url + path

    def stats(self, **filters: Any) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics("/stats"), _params(**filters), token=self.token)

    def timeseries(self, **filters: Any) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics("/stats/timeseries"), _params(**filters), token=self.token)

    def funnel(self, experiment: str) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics("/stats/funnel"), _params(experiment=experiment),
                          token=self.token)

    def results(self, experiment: str, metric: str, weights: dict[str, float] | None = None,
                **filters: Any) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics(f"/experiments/{experiment}/results"),
                          _params(metric=metric, weights=_weights_arg(weights), **filters), token=self.token)

    def cumulative(self, experiment: str, metric: str, interval: str) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics(f"/experiments/{experiment}/timeseries"),
                          _params(metric=metric, interval=interval), token=self.token)

    def traffic(self, dimension: str, **filters: Any) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics("/stats/traffic"), _params(dimension=dimension, **filters),
                          token=self.token)

    # the metrics catalogue, summaries and plans (metrics_service) ---------------
    def _metrics_write(self, method: str, path: str, body: dict[str, Any]) -> Any:
        result = request_json("metrics_service", method, self._metrics(path), self.token, json=body)
        cached_get.clear()
        return result

    def metrics(self) -> list[dict[str, Any]]:
        return cached_get("metrics_service", self._metrics("/metrics"), token=self.token)["metrics"]

    def event_types(self) -> list[dict[str, Any]]:
        return cached_get("metrics_service", self._metrics("/event-types"), token=self.token)["event_types"]

    def create_metric(self, metric: dict[str, Any]) -> dict[str, Any]:
        return self._metrics_write("POST", "/metrics", metric)

    def create_event_type(self, key: str, description: str) -> dict[str, Any]:
        return self._metrics_write("POST", "/event-types", {"key": key, "description": description})

    def summary(self, experiment: str, primary: str, secondary: list[str], guardrails: list[str],
                weights: dict[str, float] | None = None) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics(f"/experiments/{experiment}/summary"),
                          _params(primary=primary, secondary=",".join(secondary), guardrails=",".join(guardrails),
                                  weights=_weights_arg(weights)), token=self.token)

    def plan(self, experiment: str, metric: str, mde: float, power: float, alpha: float,
             weights: dict[str, float] | None = None) -> dict[str, Any]:
        return cached_get("metrics_service", self._metrics(f"/experiments/{experiment}/plan"),
                          _params(metric=metric, mde=mde, power=power, alpha=alpha, weights=_weights_arg(weights)),
                          token=self.token)

    def save_plan(self, experiment: str, metric: str, mde: float, power: float, alpha: float) -> dict[str, Any]:
        return self._metrics_write("POST", f"/experiments/{experiment}/plan",
                                   {"metric": metric, "mde": mde, "power": power, "alpha": alpha})


def _weights_arg(weights: dict[str, float] | None) -> str | None:
    return ",".join(f"{k}:{v:.10g}" for k, v in weights.items()) if weights else None
