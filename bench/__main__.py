"""`make bench`: every figure in one run, as a table, written to docs/benchmarks.md too."""
from __future__ import annotations

import os
import platform
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import assign, ingest, postgres, stats
from bench.common import CONCURRENCY, DURATION, ROOT

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100000,1000000,10000000").split(",")]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    lines = []

    def row(*cells) -> None:
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        print(lines[-1], flush=True)

    row("figure", "measured", "baseline", "ratio", "goal")
    row("---", "---", "---", "---", "---")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        data = Path(tmp)
        pg_url = stack.enter_context(postgres.fresh_schema()) if postgres.BASE_URL else None
        single = ingest.single(data, pg_url)
        m, c, n = single["metrics_service"], single["ceiling"], single["naive"]
        row("1. single-event ingest, 32 clients", f"{m.rate:.0f} ev/s, p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms",
            f"ceiling {c.rate:.0f} req/s (p99 {c.p99_ms:.1f} ms); naive {n.rate:.0f} ev/s",
            f"{m.rate / c.rate:.2f} of ceiling; {m.rate / n.rate:.2f}x naive", "≥ 0.70 of ceiling")
        if "postgresql" in single:
            p = single["postgresql"]
            row("1. single-event ingest, 32 clients, PostgreSQL",
                f"{p.rate:.0f} ev/s, p50 {p.p50_ms:.1f} ms, p99 {p.p99_ms:.1f} ms",
                f"ceiling {c.rate:.0f} req/s (p99 {c.p99_ms:.1f} ms)", f"{p.rate / c.rate:.2f} of ceiling",
                "≥ 0.70 of ceiling")
        batch, raw = ingest.batch(data)
        row("2. batch ingest, 500 events/request", f"{batch.rate:.0f} ev/s", f"raw executemany {raw:.0f} rows/s",
            f"{batch.rate / raw:.2f}", "≥ 0.25")
        if postgres.BASE_URL:
            with postgres.fresh_schema() as url:
                pg_batch = ingest.ingest_batches(url)
            with postgres.fresh_schema() as url:
                pg_raw = ingest.raw_postgres(url)
            row("2. batch ingest, 500 events/request, PostgreSQL", f"{pg_batch.rate:.0f} ev/s",
                f"raw executemany {pg_raw:.0f} rows/s (PostgreSQL)", f"{pg_batch.rate / pg_raw:.2f}", "≥ 0.25")
        assigned = assign.assign(data)
        ceiling = assigned["ceiling"]
        for kind, goal in (("returning", "≥ 0.70"), ("new", "≥ 0.50")):
            r = assigned[kind]
            row(f"3. /assign, {kind} visitors", f"{r.rate:.0f} req/s, p99 {r.p99_ms:.1f} ms",
                f"ceiling {ceiling.rate:.0f} req/s", f"{r.rate / ceiling.rate:.2f}", goal)
        page = assign.landing(data)
        r, c = page["landing"], page["ceiling"]
        row("5. landing render incl. assignment", f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, {r.rate:.0f} req/s",
            f"ceiling p50 {c.p50_ms:.1f} ms, p99 {c.p99_ms:.1f} ms", f"{r.rate / c.rate:.2f} of ceiling rate", "–")
        by_size = stats.measure(data, SIZES)
        smallest = by_size[SIZES[0]]
        for size in SIZES:
            figures = by_size[size]
            row(f"4. /stats and results, {size:,} events",
                f"stats {figures['stats_ms']:.1f} ms, results {figures['results_ms']:.1f} ms (median)",
                f"at {SIZES[0]:,}: stats {smallest['stats_ms']:.1f} ms, results {smallest['results_ms']:.1f} ms",
                f"{figures['stats_ms'] / smallest['stats_ms']:.2f}x, "
                f"{figures['results_ms'] / smallest['results_ms']:.2f}x",
                "< 50 ms at 10M, ≤ 2x")
    backends = "SQLite" + (" and PostgreSQL (rows so marked)" if postgres.BASE_URL else "")
    header = (f"# Benchmarks\n\nMeasured {datetime.now(UTC):%Y-%m-%d} on {machine()}, {backends}, services under "
              f"gunicorn with `gunicorn.conf.py` (2 workers × 8 threads), {CONCURRENCY} keep-alive Python clients "
              f"on the same machine for {DURATION:.0f} s per figure, "
              f"event counts {', '.join(f'{n:,}' for n in SIZES)}. "
              f"Reproduce with `{'BENCH_DATABASE_URL=' + postgres.BASE_URL + ' ' if postgres.BASE_URL else ''}"
              f"BENCH_SIZES={','.join(map(str, SIZES))} BENCH_SECONDS={DURATION:g} make bench` "
              f"(the defaults are 100000,1000000,10000000 and 5; without BENCH_DATABASE_URL the PostgreSQL "
              f"rows are left out).\n\n")
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
