"""`make bench`: every figure in one run beside its ceiling or baseline, printed as a table and
written to docs/benchmarks.md."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench import assign, ingest, page, report, scaling, stats, visitors
from bench.services import Memory
from bench.settings import DEFAULT_SIZES, LARGE_SIZES, Settings
from bench.wrk import SATURATED, wrk_path

ROOT = Path(__file__).resolve().parents[1]


def machine(settings: Settings) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    answer = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True)
    wrk = (answer.stdout or answer.stderr).split(" [")[0]
    parts = [f"{os.cpu_count()} cores ({cpu})", f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GB",
             f"{platform.system()} {platform.release()}", f"Python {platform.python_version()}", wrk]
    if settings.database_url:
        url = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url) as db:
            version = db.info.server_version
        parts.append(f"PostgreSQL {version // 10000}.{version % 10000} on the same machine")
    return ", ".join(parts)


def command(settings: Settings) -> str:
    env = []
    if settings.database_url:
        env.append(f"BENCH_DATABASE_URL={settings.database_url}")
    defaults = Settings()
    for name, value, default in (("BENCH_SECONDS", settings.seconds, defaults.seconds),
                                 ("BENCH_ROUNDS", settings.rounds, defaults.rounds),
                                 ("BENCH_THREADS", settings.threads, defaults.threads),
                                 ("BENCH_CONNECTIONS", settings.connections, defaults.connections),
                                 ("BENCH_VISITORS", settings.visitors, defaults.visitors),
                                 ("BENCH_PAGE_VISITORS", settings.page_visitors, defaults.page_visitors)):
        if value != default:
            env.append(f"{name}={value}")
    if settings.scaling and settings.runs("scaling") or "scaling" in settings.only:
        env.append("BENCH_SCALING=1")
    if settings.sizes != DEFAULT_SIZES:
        env.append(f"BENCH_SIZES={','.join(map(str, settings.sizes))}")
    return " ".join([*env, "make bench"])


def measure(settings: Settings, data: Path, add, memory: list[Memory]) -> list[str]:
    """Every figure, each row passed to add() as soon as it is known; returns notes for below the table."""
    notes = []
    started = time.perf_counter()

    def progress(group: str) -> None:
        print(f"({group} done, {time.perf_counter() - started:.0f} s in)", file=sys.stderr, flush=True)

    if settings.runs("page"):
        figures = page.landing(settings, data, memory)
        add(report.against_ceiling("landing `GET /`, returning visitor", figures["returning"], figures["ceiling"],
                                   report.PAGE_RETURNING, report.PAGE_P99))
        add(report.against_ceiling("landing `GET /`, new visitor", figures["new"], figures["ceiling"],
                                   report.PAGE_NEW, report.PAGE_P99))
        progress("the page")

    if settings.runs("ingest"):
        figures = ingest.single(settings, data, memory)
        for backend in ("SQLite", "PostgreSQL"):
            if backend in figures:
                add(report.against_ceiling(f"`POST /events`, one event, {backend}", figures[backend],
                                           figures["ceiling"], report.EVENTS))
        progress("single-event ingest")

    if settings.runs("assign"):
        figures = assign.assign(settings, data, memory)
        for backend in ("SQLite", "PostgreSQL"):
            for kind, goal in (("returning", report.ASSIGN_RETURNING), ("new", report.ASSIGN_NEW)):
                if f"{backend} {kind}" in figures:
                    add(report.against_ceiling(f"`/assign`, {kind} visitor, {backend}",
                                               figures[f"{backend} {kind}"], figures["ceiling"], goal))
        progress("/assign")

    if settings.runs("batch"):
        for backend, (figure, raw) in ingest.batch(settings, data, memory).items():
            add(report.against_raw(f"batch ingest, {ingest.BATCH} first-time visitors per request, {backend}",
                                   figure, raw, backend))
        progress("batch ingest")

    if settings.runs("stats"):
        by_size = stats.measure(settings, data, memory)
        smallest = settings.sizes[0]
        for backend, size in by_size:
            add(report.stats_row(backend, size, smallest, by_size[(backend, size)], by_size[(backend, smallest)]))
        for backend, size in by_size:
            if size == settings.sizes[-1]:
                add(report.segmented_row(backend, size, by_size[(backend, size)]))
        notes.append("Bulk loads for the stats figure (raw events written directly, then the aggregates rebuilt "
                     "once): " + ", ".join(f"{size:,} events on {backend} {loaded['load_seconds']:.0f} s"
                                           for (backend, size), loaded in by_size.items()) + ".")
        progress("stats")

    if settings.scaling and settings.runs("scaling") or "scaling" in settings.only:
        if not settings.database_url:
            raise SystemExit("BENCH_SCALING needs BENCH_DATABASE_URL (the instances share one PostgreSQL database)")
        measured = scaling.scaling(settings, data, memory)
        notes.append("\n".join(report.markdown(report.SCALING_HEADER, report.scaling_rows(measured))))
        notes.append(report.scaling_note(measured))
        progress("scaling")

    if settings.visitors and settings.runs("visitors"):
        seen = visitors.through_the_page(settings, data, memory)
        notes.append(
            f"Memory figure: {seen.visitors:,} new visitors through the page in {seen.page_seconds / 60:.1f} min "
            f"({seen.visitors / seen.page_seconds:,.0f}/s), then {seen.ingested:,} more straight to ingest in "
            f"batches of {ingest.BATCH} in {seen.ingest_seconds / 60:.1f} min; {seen.failed:,} failed; "
            f"metrics_service counted {seen.counted:,} distinct visitors {seen.drain_seconds:.0f} s after the last.")
        progress("memory figure")
    return notes


def main() -> None:
    settings = Settings.from_env()
    started, load_before = time.perf_counter(), os.getloadavg()
    rows: list[report.Row] = []
    memory: list[Memory] = []

    def add(row: report.Row) -> None:
        rows.append(row)
        print(" | ".join(row.cells()), flush=True)

    print(" | ".join(report.Row.HEADER), flush=True)
    data = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        notes = measure(settings, data, add, memory)
    except BaseException:
        for database in data.rglob("*.db*"):
            database.unlink()
        print(f"The benchmark failed; the servers' logs are in {data}", file=sys.stderr)
        raise
    shutil.rmtree(data)
    elapsed = time.perf_counter() - started
    memory_lines = report.markdown(report.MEMORY_HEADER, report.memory_rows(memory))
    print("\n".join([*memory_lines, *notes, f"{elapsed / 60:.1f} min"]))
    if settings.only:
        print(f"BENCH_ONLY={','.join(settings.only)}: docs/benchmarks.md left as it was (it records whole runs)")
        return
    write_doc(settings, rows, memory_lines, notes, elapsed, load_before, os.getloadavg())


def shared(before: float, after: float) -> str:
    """What the load average says of the machine: the run's own load reaches about 2 on 2 cores."""
    return ": other work shared the machine" if max(before, after) > os.cpu_count() + 0.5 else ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def write_doc(settings: Settings, rows: list[report.Row], memory_lines: list[str], notes: list[str], elapsed: float,
              load_before: tuple[float, ...], load_after: tuple[float, ...]) -> None:
    backends = "SQLite" + (" and PostgreSQL (rows so marked)" if settings.database_url else "")
    judged = [row for row in rows if row.met != "–"]
    missed = [row.figure for row in judged if row.met != "yes"]
    text = f"""# Benchmarks

Written by `make bench` (`bench/`). Measured {datetime.now(UTC):%Y-%m-%d} on {machine(settings)};
{backends}. The run took {elapsed / 60:.1f} min. The load average (1 min) was {load_before[0]:.1f} when it
started and {load_after[0]:.1f} when it ended, on {os.cpu_count()} cores{shared(load_before[0], load_after[0])}.

Reproduce with `{command(settings)}`. `BENCH_DATABASE_URL=postgresql+psycopg://...` adds the PostgreSQL
rows (in schemas of their own, dropped afterwards); `BENCH_VISITORS=1000000` adds the memory figure
for that many distinct new visitors, the first `BENCH_PAGE_VISITORS` (100,000) through the page and
the rest straight to ingest (about 6 min); `BENCH_SCALING=1` (with `BENCH_DATABASE_URL`) adds one
and two instances of each service behind nginx, each pinned to a core (`bench/scaling.py`, about
2 min); `BENCH_SECONDS`, `BENCH_ROUNDS`, `BENCH_THREADS`,
`BENCH_CONNECTIONS` and `BENCH_SIZES` tune the rest (`bench/settings.py`;
`BENCH_SIZES={','.join(map(str, LARGE_SIZES))}` adds the stats figure at 10M events, whose bulk load takes
20–60 min per backend on 2 cores); `BENCH_ONLY=page` (or
`ingest`, `assign`, `batch`, `stats`, `scaling`, `visitors`, comma-separated) measures just those
groups and prints them without rewriting this file.

**How.** Every server runs under gunicorn with the shipped `gunicorn.conf.py` (2 workers × 8 threads)
on the same machine as the load generator, [wrk](https://github.com/wg/wrk) (Debian's package), with
{plural(settings.threads, "thread")} and {settings.connections} keep-alive connections
({settings.batch_connections} for batch ingest). Lua scripts in `bench/lua/` make every request distinct:
new event and visitor ids from the run's nonce, the thread and a counter, or returning visitors' own
cookies, captured from the page's answers to their first visits. Each figure's ceiling is the trivial
Flask app `bench/ceiling.py` under the same configuration, sent the same requests: a trivial HTML page,
a trivial POST, a trivial JSON GET. The targets of a group take turns, {plural(settings.rounds, "round")}
of {settings.seconds} s each after a 1 s warm-up, so the noise of the shared machine falls on each alike:
read the ratios. Rates are over all rounds; p50 and p99 are the median of the rounds' own (wrk's
`--latency`). Batch ingest is compared with raw `executemany` of as many first-time visitors' rows into
a plain events table, in process, in the same rounds. Stats latency is timed from Python, one request
at a time (what an analyst waits for; a load generator adds nothing at one request in flight).

**The generator is not the limit.** Beside every figure: wrk's CPU time (the kernel's accounting of
the process, all threads) over its threads' time, for the figure and for its ceiling. A figure whose
generator was busy more than {SATURATED:.0%} of that time gets no ratio (its load may have been capped by
the generator), and neither does one with a failed request. Server CPU is that of every process of
the servers involved (for the page: landing, ab_service and metrics_service), in cores.

"""
    text += "\n".join(report.markdown(report.Row.HEADER, [row.cells() for row in rows])) + "\n\n"
    text += (f"Goals met in this run: {len(judged) - len(missed)} of {len(judged)}"
             + (f"; not met: {'; '.join(missed)}.\n\n" if missed else ".\n\n"))
    text += "Resident memory of every server process when its group of figures was done:\n\n"
    text += "\n".join(memory_lines) + "\n"
    if notes:
        text += "\n" + "\n\n".join(notes) + "\n"
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text(text)


if __name__ == "__main__":
    main()
