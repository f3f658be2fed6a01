"""PostgreSQL schemas of their own, for tests and benchmarks that share one server."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


class Schemas:
    """Creates fresh schemas in the database at `base` and drops them all on close()."""

    def __init__(self, base: str, prefix: str = "t_"):
        self.base = base
        self.prefix = prefix
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def new_url(self) -> str:
        """A URL whose connections use a new, empty schema (through the search_path option)."""
        schema = f"{self.prefix}{uuid.uuid4().hex[:16]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.created.append(schema)
        return make_url(self.base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            for schema in self.created:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.admin.dispose()


@contextmanager
def fresh_schema(base: str, prefix: str = "t_") -> Iterator[str]:
    """One fresh schema's URL for the length of the block."""
    schemas = Schemas(base, prefix)
    try:
        yield schemas.new_url()
    finally:
        schemas.close()
