"""A returning visitor's assignments, carried in a signed cookie so no page view waits on ab_service.

The cookie holds `{experiment: variant}` signed with the landing service's secret (itsdangerous, as
Flask's own sessions): a cookie that was altered, forged or garbled is ignored as a whole, never
trusted in part. The secret comes from configuration (`SECRET_KEY`); without one, the first worker to
start writes a random one to the data folder and every worker of the instance reads that file.

A cookie holds assignments, never the visitor's id, so visitors share a few distinct cookies (one per
combination of variants): each process keeps the last CACHED signatures made and checked, and a
returning visitor's page view signs and verifies nothing.
"""
from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer

from core.keys import KEY_PATTERN

COOKIE = "ll_asg"
SALT = "landing-lab.assignments"
MAX_ENTRIES = 50
CACHED = 256  # cookies signed, and cookies checked, remembered per process (each at most 4 KB)
_KEY = re.compile(KEY_PATTERN)


def load_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, else the one kept in data_dir/landing_secret (created once, atomically)."""
    if configured:
        return configured
    path = data_dir / "landing_secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    for _ in range(100):  # another worker may be between creating the file and writing it
        secret = path.read_text().strip()
        if secret:
            return secret
        os.sched_yield()
    raise RuntimeError(f"{path} is empty")


class StickyCookie:
    def __init__(self, secret: str):
        self.serializer = URLSafeSerializer(secret, salt=SALT)
        self._dumps = lru_cache(maxsize=CACHED)(self._sign)
        self._loads = lru_cache(maxsize=CACHED)(self._check)

    def dumps(self, assignments: Mapping[str, str]) -> str:
        return self._dumps(tuple(sorted(assignments.items())[:MAX_ENTRIES]))

    def _sign(self, assignments: tuple[tuple[str, str], ...]) -> str:
        return self.serializer.dumps(dict(assignments))

    def loads(self, value: str | None) -> dict[str, str]:
        """The assignments in a cookie; {} for a missing, tampered or malformed one."""
        if not value or len(value) > 4096:
            return {}
        return dict(self._loads(value))

    def _check(self, value: str) -> dict[str, str]:
        try:
            data = self.serializer.loads(value)
        except BadData:
            return {}
        if not isinstance(data, dict) or len(data) > MAX_ENTRIES:
            return {}
        if not all(isinstance(k, str) and isinstance(v, str) and _KEY.match(k) and _KEY.match(v)
                   for k, v in data.items()):
            return {}
        return data
