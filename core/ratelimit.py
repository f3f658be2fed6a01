"""Per-key rate limits (moving window, in memory per process) on top of the `limits` library."""
from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"too many requests for this {scope}; retry in {retry_after}s")
        self.scope = scope
        self.retry_after = retry_after


class RateLimits:
    """Named limits such as {"visitor": "60/minute", "ip": "600/minute"}; an empty rule disables one."""

    def __init__(self, rules: dict[str, str]):
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.rules = {name: parse(rule) for name, rule in rules.items() if rule}

    def hit(self, scope: str, key: str) -> None:
        """Count one request for key under the named limit; raise RateLimited when it is exhausted."""
        rule = self.rules.get(scope)
        if rule is None or not key:
            return
        if not self.limiter.hit(rule, scope, key):
            reset = self.limiter.get_window_stats(rule, scope, key).reset_time
            raise RateLimited(scope, max(1, math.ceil(reset - time.time())))
