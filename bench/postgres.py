"""PostgreSQL for the benchmarks: BENCH_DATABASE_URL (for example
postgresql+psycopg://postgres@127.0.0.1:5432/test) adds PostgreSQL rows; each run works in a fresh
schema that is dropped at the end."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BASE_URL = os.environ.get("BENCH_DATABASE_URL", "")


@contextmanager
def fresh_schema(base: str = BASE_URL):
    """A URL whose connections use a new, empty schema of the PostgreSQL database at `base`."""
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
