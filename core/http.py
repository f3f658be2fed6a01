"""One HTTP client set-up for service-to-service calls: timeouts and bounded retries."""
from __future__ import annotations

from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT = (0.5, 2.0)


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header that presents token (an admin token, an ingest key); none without one."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class TimeoutSession(requests.Session):
    """A Session that never waits forever: every request gets the default timeout unless told otherwise."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def make_session(
    retries: int = 2,
    backoff: float = 0.1,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    pool_size: int = 16,
    headers: Mapping[str, str] | None = None,
) -> TimeoutSession:
    """A pooled session that retries connection errors and 502/503/504 with exponential backoff, and sends
    `headers` (such as credentials) with every request.

    Retries also apply to POST: every write the services make is idempotent (event ids, upserts).
    """
    session = TimeoutSession(timeout)
    session.headers.update(headers or {})
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        backoff_factor=backoff,
        status_forcelist=(502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
