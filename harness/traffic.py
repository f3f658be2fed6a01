"""Traffic for memory and load measurements: batches of events from visitors never seen before."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.processes import INGEST_KEY


def new_visitor_batch(size: int) -> list[dict]:
    """One page view from each of `size` new visitors, split between variants A and B."""
    return [{"visitor_id": str(uuid.uuid4()), "variant": "AB"[i % 2], "event_type": "page_view"}
            for i in range(size)]


def send_new_visitors(metrics_url: str, count: int, batch_size: int = 1000, threads: int = 4,
                      every: int = 0, report: Callable[[int], None] | None = None) -> int:
    """POST /events with `count` new visitors in batches from several threads at once; calls
    report(visitors sent so far) after each `every` visitors. Returns how many events were accepted."""
    def post(_: int) -> int:
        # a connection per batch, so that gunicorn hands the batches to all its workers
        response = requests.post(f"{metrics_url}/events", json=new_visitor_batch(batch_size), timeout=120,
                                 headers={"Authorization": f"Bearer {INGEST_KEY}"})
        response.raise_for_status()
        return response.json()["accepted"]

    accepted = 0
    with ThreadPoolExecutor(threads) as pool:
        for done, count_accepted in enumerate(pool.map(post, range(count // batch_size)), 1):
            accepted += count_accepted
            if report and every and (done * batch_size) % every == 0:
                report(done * batch_size)
    return accepted
