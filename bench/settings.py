"""What a benchmark run is told by its environment, read once in main() (nothing is read at import)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# 10,000,000 events take 20-60 min to bulk-load and rebuild per backend on 2 cores (BENCH_SIZES adds them);
# the default run stays under 15 minutes.
DEFAULT_SIZES = (100_000, 1_000_000)
LARGE_SIZES = (*DEFAULT_SIZES, 10_000_000)
GROUPS = ("page", "ingest", "assign", "batch", "stats", "scaling", "visitors")  # BENCH_ONLY's names


@dataclass(frozen=True)
class Settings:
    """How long and how hard to load. One thread of wrk with 32 keep-alive connections: on a 2-core
    machine a second thread only takes a core from the servers, and one thread drives the trivial app
    at a few thousand requests per second using a fraction of its core (the table shows how much)."""

    seconds: int = 3  # of load per target in each round (wrk takes whole seconds)
    rounds: int = 3  # targets of one group take turns this many times
    threads: int = 1
    connections: int = 32
    batch_connections: int = 4  # batch ingest: few clients, each sending 500 events at a time
    sizes: tuple[int, ...] = DEFAULT_SIZES  # event counts for the stats figure
    database_url: str = ""  # PostgreSQL for the rows so marked; none without it
    visitors: int = 0  # distinct visitors through the page and ingest for the memory figure; 0 skips it
    page_visitors: int = 100_000  # of those, how many come through the page (the rest straight to ingest)
    scaling: bool = False  # one and two instances behind nginx on PostgreSQL (needs database_url)
    only: tuple[str, ...] = ()  # BENCH_ONLY=page,ingest,...: just these groups, printed, docs left alone

    def runs(self, group: str) -> bool:
        """Whether this run measures `group` (one of GROUPS)."""
        return not self.only or group in self.only

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, value: int) -> int:
            return int(env.get(name, "") or value)

        sizes = env.get("BENCH_SIZES", "")
        only = tuple(group.strip() for group in env.get("BENCH_ONLY", "").split(",") if group.strip())
        unknown = set(only) - set(GROUPS)
        if unknown:
            raise ValueError(f"BENCH_ONLY names no group {sorted(unknown)}; the groups: {', '.join(GROUPS)}")
        return cls(
            seconds=max(1, number("BENCH_SECONDS", default.seconds)),
            rounds=max(1, number("BENCH_ROUNDS", default.rounds)),
            threads=max(1, number("BENCH_THREADS", default.threads)),
            connections=max(1, number("BENCH_CONNECTIONS", default.connections)),
            batch_connections=max(1, number("BENCH_BATCH_CONNECTIONS", default.batch_connections)),
            sizes=tuple(int(s) for s in sizes.split(",")) if sizes else default.sizes,
            database_url=env.get("BENCH_DATABASE_URL", ""),
            visitors=number("BENCH_VISITORS", default.visitors),
            page_visitors=number("BENCH_PAGE_VISITORS", default.page_visitors),
            scaling=env.get("BENCH_SCALING", "") not in ("", "0", "false"),
            only=only,
        )
