"""Per-key rate limits (moving window) on top of the `limits` library, kept where every worker of a
service sees them.

The storage is named by a URI. A database URL (`sqlite:///...`, `postgresql+psycopg://...`) keeps
the limits in tables of that database (DatabaseStorage below): the gunicorn workers sharing a SQLite
file share its limits, and instances sharing a PostgreSQL database share theirs. Any URI the `limits`
library knows also works, e.g. `redis://host:6379` (with the `redis` extra) to share limits between
instances on different machines; `memory://` keeps them per process.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager

from limits import parse
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.exc import SQLAlchemyError

from core.db import exclusive, make_engine, write_transaction

log = logging.getLogger(__name__)


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"too many requests for this {scope}; retry in {retry_after}s")
        self.scope = scope
        self.retry_after = retry_after


class RateLimits:
    """Named limits such as {"visitor": "60/minute", "ip": "600/minute"}; an empty rule disables one.

    When the storage cannot be reached, requests are let through (and the failure logged): an outage
    of Redis must not turn away every visitor's events."""

    def __init__(self, rules: dict[str, str], storage_uri: str):
        self.storage = storage_from_string(storage_uri, wrap_exceptions=True)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.rules = {name: parse(rule) for name, rule in rules.items() if rule}

    def hit(self, scope: str, key: str) -> None:
        """Count one request for key under the named limit; raise RateLimited when it is exhausted."""
        rule = self.rules.get(scope)
        if rule is None or not key:
            return
        try:
            if self.limiter.hit(rule, scope, key):
                return
            reset = self.limiter.get_window_stats(rule, scope, key).reset_time
        except StorageError as exc:
            log.warning("rate limit storage unavailable, request let through: %s", exc.storage_error)
            return
        raise RateLimited(scope, max(1, math.ceil(reset - time.time())))


metadata = MetaData()
hits = Table(
    "rate_limit_hits", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("at", Float, nullable=False),  # seconds since the epoch
    Column("expires_at", Float, nullable=False),
    Index("ix_rate_limit_hits_key_at", "key", "at"),
)
counters = Table(
    "rate_limit_counters", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
)
PURGE_EVERY_SECONDS = 60.0
INCREMENT = text("""
    INSERT INTO rate_limit_counters (key, value, expires_at) VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
        value = CASE WHEN rate_limit_counters.expires_at <= :now THEN excluded.value
                     ELSE rate_limit_counters.value + excluded.value END,
        expires_at = CASE WHEN rate_limit_counters.expires_at <= :now THEN excluded.expires_at
                          ELSE rate_limit_counters.expires_at END
    RETURNING value""")


class DatabaseStorage(Storage, MovingWindowSupport):
    """A `limits` storage in two tables of a SQLite or PostgreSQL database: one row per request in
    a moving window, one row per fixed-window counter.

    Each operation is one short write transaction. On SQLite the processes sharing the file take
    turns on its write lock (core.db.write_transaction); on PostgreSQL a transaction-scoped advisory
    lock on the key makes a check and its insert one step. Rows of windows that have passed are
    deleted as a key is used, and everyone's about once a minute.
    """

    STORAGE_SCHEME = ["sqlite", "postgresql", "postgresql+psycopg"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.engine = make_engine(uri)
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        with exclusive(self.engine, "migrate"):  # workers starting together create the tables once
            metadata.create_all(self.engine)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    @contextmanager
    def _transaction(self, key: str | None = None):
        """A write transaction; on PostgreSQL it first takes an advisory lock on the key for its length."""
        with write_transaction(self.engine) as conn:
            if key is not None and conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
            yield conn

    # moving window -------------------------------------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        self._purge(now)
        with self._transaction(key) as conn:
            conn.execute(text("DELETE FROM rate_limit_hits WHERE key = :key AND at <= :start"),
                         {"key": key, "start": now - expiry})
            taken = conn.execute(text("SELECT count(*) FROM rate_limit_hits WHERE key = :key"),
                                 {"key": key}).scalar_one()
            if taken + amount > limit:
                return False
            conn.execute(hits.insert(), [{"key": key, "at": now, "expires_at": now + expiry}] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self.engine.connect() as conn:
            oldest, taken = conn.execute(
                text("SELECT min(at), count(*) FROM rate_limit_hits WHERE key = :key AND at > :start"),
                {"key": key, "start": now - expiry}).one()
        return (oldest, taken) if taken else (now, 0)

    # fixed window --------------------------------------------------------------------------------
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._transaction(key) as conn:
            return conn.execute(INCREMENT, {"key": key, "amount": amount, "expires": now + expiry,
                                            "now": now}).scalar_one()

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT value FROM rate_limit_counters WHERE key = :key AND expires_at > :now"),
                                 {"key": key, "now": time.time()}).scalar_one_or_none()
        return int(value or 0)

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            expires = conn.execute(text("SELECT expires_at FROM rate_limit_counters WHERE key = :key"),
                                   {"key": key}).scalar_one_or_none()
        return float(expires) if expires is not None and expires > time.time() else time.time()

    # upkeep --------------------------------------------------------------------------------------
    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._transaction() as conn:
            return sum(conn.execute(table.delete()).rowcount for table in (hits, counters))

    def clear(self, key: str) -> None:
        with self._transaction(key) as conn:
            for table in (hits, counters):
                conn.execute(table.delete().where(table.c.key == key))

    def _purge(self, now: float) -> None:
        """Delete every window that has passed, at most once a PURGE_EVERY_SECONDS per process (keys
        that are not used again would otherwise keep their rows)."""
        with self._purge_lock:
            if now < self._next_purge:
                return
            self._next_purge = now + PURGE_EVERY_SECONDS
        with self._transaction() as conn:
            conn.execute(hits.delete().where(hits.c.expires_at <= now))
            conn.execute(counters.delete().where(counters.c.expires_at <= now))

