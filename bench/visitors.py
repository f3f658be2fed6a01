"""Memory after many distinct visitors: BENCH_VISITORS new visitors through the landing page (each a
first visit: an assignment in ab_service, a page view through the outbox into metrics_service's
ingest), then every process's resident memory."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.page import page_stack
from bench.services import ADMIN_TOKEN, Memory, Servers
from bench.settings import Settings
from bench.wrk import Target, load

LONGEST_RUN = 60  # seconds of one wrk run; runs repeat until enough visitors have come
DRAIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Visitors:
    visitors: int  # page views answered, each a new visitor
    failed: int
    page_seconds: float
    counted: int  # distinct visitors metrics_service counts once the outbox has delivered
    drain_seconds: float  # after the last page view, until they were all counted (or the timeout)


def counted_visitors(metrics_url: str) -> int:
    response = requests.get(f"{metrics_url}/stats", params={"experiment": "landing"}, timeout=60,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response.raise_for_status()
    return response.json()["unique_visitors"]


def through_the_page(settings: Settings, data: Path, memory: list[Memory]) -> Visitors:
    wanted = settings.visitors
    with Servers(data / "visitors", memory, f"{wanted:,} new visitors through the page") as servers:
        stack = page_stack(servers)
        page, metrics = stack[0], stack[2]
        target = Target("new", page.url, "page.lua", {}, stack)
        sent = failed = 0
        started = time.perf_counter()
        seconds = 5
        while sent < wanted:
            run = load(target, settings, seconds)
            sent += run.requests
            failed += run.non_2xx + run.socket_errors
            rate = run.requests / run.seconds if run.seconds else 0
            seconds = max(1, min(LONGEST_RUN, round((wanted - sent) / rate))) if rate else LONGEST_RUN
        page_seconds = time.perf_counter() - started
        started = time.perf_counter()
        counted = counted_visitors(metrics.url)
        while counted < sent - failed and time.perf_counter() - started < DRAIN_TIMEOUT:
            time.sleep(2)
            counted = counted_visitors(metrics.url)
        return Visitors(sent, failed, page_seconds, counted, time.perf_counter() - started)
