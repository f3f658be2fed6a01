"""Memory after many distinct visitors: BENCH_VISITORS new visitors, the first BENCH_PAGE_VISITORS of
them through the landing page (each a first visit: an assignment in ab_service, a page view through
the outbox into metrics_service's ingest) and the rest straight to metrics_service's ingest in
batches of first-time visitors' page views (what the outbox sends, some fifty times faster than the
page serves them), then every process's resident memory. The landing service keeps nothing per
visitor, so its memory after the page's share is what it holds after any number; metrics_service
and ab_service see every visitor."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.ingest import BATCH
from bench.page import page_stack
from bench.services import ADMIN_TOKEN, INGEST_KEY, Memory, Servers
from bench.settings import Settings
from bench.wrk import Target, load

LONGEST_RUN = 60  # seconds of one wrk run; runs repeat until enough visitors have come
DRAIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Visitors:
    visitors: int  # page views answered, each a new visitor
    failed: int
    page_seconds: float
    ingested: int  # further new visitors' events sent straight to ingest
    ingest_seconds: float
    counted: int  # distinct visitors metrics_service counts once the outbox has delivered
    drain_seconds: float  # after the last page view, until they were all counted (or the timeout)


def counted_visitors(metrics_url: str) -> int:
    response = requests.get(f"{metrics_url}/stats", params={"experiment": "landing"}, timeout=60,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response.raise_for_status()
    return response.json()["unique_visitors"]


def drive(target: Target, settings: Settings, wanted: int) -> tuple[int, int, float]:
    """wrk runs against target until `wanted` items were sent: (items sent, items failed, seconds)."""
    sent = failed = 0
    started = time.perf_counter()
    seconds = 5
    while sent < wanted:
        run = load(target, settings, seconds)
        sent += run.requests * target.items_per_request
        failed += (run.non_2xx + run.socket_errors) * target.items_per_request
        rate = run.requests * target.items_per_request / run.seconds if run.seconds else 0
        seconds = max(1, min(LONGEST_RUN, round((wanted - sent) / rate))) if rate else LONGEST_RUN
    return sent, failed, time.perf_counter() - started


def through_the_page(settings: Settings, data: Path, memory: list[Memory]) -> Visitors:
    wanted = settings.visitors
    with Servers(data / "visitors", memory, f"{wanted:,} new visitors through the page and ingest") as servers:
        stack = page_stack(servers)
        page, metrics = stack[0], stack[2]
        sent, failed, page_seconds = drive(Target("new", page.url, "page.lua", {}, stack), settings,
                                           min(wanted, settings.page_visitors))
        batches = Target("ingest", metrics.url, "batch.lua", {"key": INGEST_KEY, "size": str(BATCH)}, stack[1:],
                         connections=settings.batch_connections, items_per_request=BATCH)
        ingested, lost, ingest_seconds = drive(batches, settings, wanted - sent) if wanted > sent else (0, 0, 0.0)
        failed += lost
        started = time.perf_counter()
        counted = counted_visitors(metrics.url)
        while counted < sent + ingested - failed and time.perf_counter() - started < DRAIN_TIMEOUT:
            time.sleep(2)
            counted = counted_visitors(metrics.url)
        return Visitors(sent, failed, page_seconds, ingested, ingest_seconds, counted, time.perf_counter() - started)
