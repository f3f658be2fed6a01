"""PostgreSQL for the benchmarks: BENCH_DATABASE_URL (for example
postgresql+psycopg://postgres@127.0.0.1:5432/test) adds PostgreSQL rows; each run works in a fresh
schema that is dropped at the end."""
from __future__ import annotations

import os
from contextlib import contextmanager

from harness.postgres import fresh_schema as _fresh_schema

BASE_URL = os.environ.get("BENCH_DATABASE_URL", "")


@contextmanager
def fresh_schema(base: str = BASE_URL):
    with _fresh_schema(base, prefix="bench_") as url:
        yield url
