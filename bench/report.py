"""The table: each figure beside its ceiling or baseline from the same run, the ratio (none when the
generator was saturated or requests failed), the goal, and the CPU the generator and the servers used."""
from __future__ import annotations

from dataclasses import dataclass

from bench.ingest import BATCH as BATCH_EVENTS
from bench.ingest import Raw
from bench.scaling import INSTANCES, Scaling
from bench.services import Memory
from bench.wrk import SATURATED, Figure, ratio

# The goals of issue 16, each against its ceiling or baseline measured in the same run.
PAGE_RETURNING = 0.5
PAGE_NEW = 0.4
PAGE_P99 = 3.0  # the page's p99 at most this many times the ceiling's
EVENTS = 0.7
ASSIGN_RETURNING = 0.7
ASSIGN_NEW = 0.5
BATCH = 0.25  # of raw executemany
STATS_MS = 50.0  # median at the largest size
STATS_GROWTH = 2.0  # from the smallest size to the largest
SEGMENTED_MS = 80.0  # results per segment: median at the largest size
MEMORY_MB = 200.0  # resident, per process
MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    baseline: str
    ratio: str
    goal: str
    met: str
    generator: str
    servers: str

    HEADER = ("figure", "measured", "ceiling or baseline (same run)", "ratio", "goal", "met",
              "wrk CPU (figure / ceiling)", "server CPU, cores (figure / ceiling)")

    def cells(self) -> tuple[str, ...]:
        return (self.figure, self.measured, self.baseline, self.ratio, self.goal, self.met, self.generator,
                self.servers)


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                               for r in rows]


def yes(condition: bool) -> str:
    return "yes" if condition else "**no**"


def rate(figure: Figure, unit: str = "req/s") -> str:
    settled = f" ({figure.settle_seconds:.1f} s of folding after the rounds counted)" \
        if figure.settle_seconds >= 0.05 else ""
    return f"{figure.rate:,.0f} {unit}, p50 {figure.p50_ms:.1f} ms, p99 {figure.p99_ms:.1f} ms{settled}"


def generator(figure: Figure) -> str:
    share = f"{figure.generator_share:.0%} of {figure.generator_threads} thread{'s' * (figure.generator_threads > 1)}"
    return share + (" (saturated)" if figure.saturated else "")


def untrusted(figure: Figure, *others: Figure) -> str:
    """Why a ratio is withheld."""
    for f in (figure, *others):
        if f.saturated:
            return f"generator saturated (over {SATURATED:.0%}) — no ratio"
    failed = [f for f in (figure, *others) if f.errors]
    first = next((f.first_error for f in failed if f.first_error), "")
    return (f"{sum(f.errors for f in failed):,} failed requests — no ratio"
            + (f" (first: `{first[:120]}`)" if first else ""))


def against_ceiling(label: str, figure: Figure, ceiling: Figure, goal: float, p99_goal: float | None = None) -> Row:
    share = ratio(figure, ceiling)
    goal_text = f"≥ {goal:.2f}" + (f", p99 ≤ {p99_goal:g}× the ceiling's" if p99_goal else "")
    if share is None:
        shown, met = untrusted(figure, ceiling), "–"
    else:
        p99 = figure.p99_ms / ceiling.p99_ms if ceiling.p99_ms else float("inf")
        shown = f"{share:.2f}" + (f"; p99 {p99:.1f}×" if p99_goal else "")
        met = yes(share >= goal and (p99_goal is None or p99 <= p99_goal))
    return Row(label, rate(figure), rate(ceiling), shown, goal_text, met,
               f"{generator(figure)} / {generator(ceiling)}", f"{figure.server_cores:.2f} / {ceiling.server_cores:.2f}")


def against_raw(label: str, figure: Figure, raw: Raw, backend: str) -> Row:
    if figure.saturated or figure.errors:
        shown, met = untrusted(figure), "–"
    else:
        share = figure.rate / raw.rate
        shown, met = f"{share:.2f}", yes(share >= BATCH)
    return Row(label, rate(figure, "events/s"), f"raw executemany ({backend}, in process) {raw.rate:,.0f} rows/s",
               shown, f"≥ {BATCH:.2f}", met, generator(figure), f"{figure.server_cores:.2f}")


def stats_row(backend: str, size: int, smallest: int, figures: dict[str, float], base: dict[str, float]) -> Row:
    growth = (figures["stats_ms"] / base["stats_ms"], figures["results_ms"] / base["results_ms"])
    slowest = max(figures["stats_ms"], figures["results_ms"])
    return Row(f"/stats and results, {size:,} events, {backend}",
               f"stats {figures['stats_ms']:.1f} ms, results {figures['results_ms']:.1f} ms (median)",
               f"at {smallest:,}: stats {base['stats_ms']:.1f} ms, results {base['results_ms']:.1f} ms",
               f"{growth[0]:.2f}×, {growth[1]:.2f}×", f"< {STATS_MS:g} ms, ≤ {STATS_GROWTH:g}× from {smallest:,}",
               yes(slowest < STATS_MS and max(growth) <= STATS_GROWTH),
               "– (one request at a time from Python)", "–")


def segmented_row(backend: str, size: int, figures: dict[str, float]) -> Row:
    slowest = max(figures["segmented_ms"], figures["segment_stats_ms"])
    return Row(f"results per segment (utm_source, 5 values) and /stats of one segment, {size:,} events, {backend}",
               f"results {figures['segmented_ms']:.1f} ms, stats {figures['segment_stats_ms']:.1f} ms (median)",
               "–", "–", f"< {SEGMENTED_MS:g} ms", yes(slowest < SEGMENTED_MS),
               "– (one request at a time from Python)", "–")


MEMORY_HEADER = ("server", "after", "gunicorn master, MB", "workers, MB", f"goal < {MEMORY_MB:g} MB each", )


def memory_rows(memory: list[Memory]) -> list[tuple[str, ...]]:
    return [(m.server, m.after, f"{m.resident[0] / MB:.0f}" if m.resident else "–",
             ", ".join(f"{r / MB:.0f}" for r in m.resident[1:]) or "–", yes(m.largest / MB < MEMORY_MB))
            for m in memory]


SCALING_HEADER = ("instances (1 core each, behind nginx, PostgreSQL)", "landing `GET /`, new visitors",
                  "`POST /events`, one event", "page ×", "ingest ×", "server CPU, cores (page / ingest)")


def scaling_rows(measured: Scaling) -> list[tuple[str, ...]]:
    rows = []
    page_one, ingest_one = measured.figures[f"page {INSTANCES[0]}"], measured.figures[f"ingest {INSTANCES[0]}"]
    for n in INSTANCES:
        page, ingest = measured.figures[f"page {n}"], measured.figures[f"ingest {n}"]
        failed = page.errors + ingest.errors
        rows.append((f"{n}", rate(page), rate(ingest, "events/s"),
                     f"{page.rate / page_one.rate:.2f}" if page_one.rate and not failed else "–",
                     f"{ingest.rate / ingest_one.rate:.2f}" if ingest_one.rate and not failed else "–",
                     f"{page.server_cores:.2f} / {ingest.server_cores:.2f}"
                     + (f" ({failed:,} failed requests)" if failed else "")))
    return rows


def scaling_note(measured: Scaling) -> str:
    return (f"Scaling figure: PostgreSQL inserted or updated {measured.rows_per_event:.1f} rows per stored event "
            f"({measured.events:,} events stored by the metrics_service instances, page views and single events; "
            f"{measured.bytes_per_event:,.0f} bytes of tables and indexes per event); "
            f"its backends serving the two instances used {measured.postgres_ms_per_event:.2f} ms of CPU per event "
            f"at {measured.ingest_rate:,.0f} single events/s, and {measured.postgres_ms_per_batched_event:.3f} ms "
            f"per event in batches of {BATCH_EVENTS} first-time visitors at {measured.batch_rate:,.0f} events/s.")
