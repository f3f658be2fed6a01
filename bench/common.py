"""What every benchmark needs: servers started as real processes, and a keep-alive load generator."""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.processes import gunicorn_command, running

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 32
DURATION = float(os.environ.get("BENCH_SECONDS", "5"))


def gunicorn(app: str, port: int, env: dict[str, str]):
    """A Flask app under gunicorn with the shipped config until the block ends."""
    return running(gunicorn_command(app, port), env, f"http://127.0.0.1:{port}/health")


def server(command: list[str], env: dict[str, str], health: str):
    return running(command, env, health)


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    items_per_request: int = 1

    @property
    def rate(self) -> float:
        return self.requests * self.items_per_request / self.seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def load(send: Callable[[requests.Session, int], requests.Response], concurrency: int = CONCURRENCY,
         duration: float = DURATION, items_per_request: int = 1, warmup: float = 1.0, start: int = 0) -> Result:
    """`concurrency` keep-alive clients call send(session, n) in a loop for `duration` seconds; every
    n is distinct within a run (from `start` on)."""
    stop = threading.Event()
    measuring = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []

    def client(index: int) -> None:
        session = requests.Session()
        n = start + index * 10_000_000
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            response = send(session, n)
            elapsed = time.perf_counter() - started
            if response.status_code >= 300:
                errors.append(f"{response.status_code} {response.text[:200]}")
                stop.set()
            if measuring.is_set():
                latencies[index].append(elapsed)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    measuring.set()
    started = time.perf_counter()
    time.sleep(duration)
    measuring.clear()
    seconds = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    if errors:
        raise RuntimeError(f"benchmark request failed: {errors[0]}")
    flat = [x for per in latencies for x in per]
    return Result(len(flat), seconds, flat, items_per_request)


def compare(targets: dict[str, Callable[[requests.Session, int], requests.Response]], rounds: int = 3,
            **options) -> dict[str, Result]:
    """Load each target in turn, `rounds` times round-robin, DURATION seconds in all per target, and
    sum each target's runs: the machine's noise (it is shared) falls on the measured service and on
    its baseline alike, so their ratio holds."""
    results: dict[str, Result] = {}
    for round_ in range(rounds):
        for name, send in targets.items():
            run = load(send, duration=DURATION / rounds, start=round_ * 1_000_000_000, **options)
            before = results.get(name)
            results[name] = run if before is None else Result(
                before.requests + run.requests, before.seconds + run.seconds, before.latencies + run.latencies,
                run.items_per_request)
    return results
