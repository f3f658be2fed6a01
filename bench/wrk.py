"""Load from wrk, a compiled generator (Debian's package), with keep-alive connections and a Lua
script per figure that makes every request distinct (bench/lua/).

Each run reports what wrk measured (one JSON line printed by the script's done()), the CPU time wrk
itself used (from the kernel's accounting of the child when it is reaped) and the CPU time the
servers used in the same interval (from /proc). A figure whose generator was busy for more than
SATURATED of its threads' time gets no ratio: the load it offered may have been capped by the
generator, not the server.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.settings import Settings
from harness.processes import ServiceProcess, cpu_seconds

LUA = Path(__file__).resolve().parent / "lua"
# wrk's threads each run an event loop that never blocks while work is queued. Busy for more than 85%
# of the run, a thread leaves answered sockets waiting for their turn (their time shows as latency)
# and sends the next request late, so the offered load is the generator's, not the server's; below
# that, it waits on the servers most of the time. One thread drives the trivial app at about 4,000 req/s
# on this 2-core machine using some 12% of its time, so the figures keep far below it.
SATURATED = 0.85
TIMEOUT = "10s"  # a slower answer counts as a timeout error (so the figure gets no ratio)


def wrk_path() -> str:
    path = shutil.which("wrk") or "/usr/bin/wrk"
    if not os.access(path, os.X_OK):
        raise RuntimeError("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu)")
    return path


@dataclass(frozen=True)
class Target:
    """One thing to load: a base URL, the Lua script that makes its requests and the script's
    arguments, and the server processes whose CPU time counts towards it."""

    name: str
    url: str
    script: str
    args: Mapping[str, str] = field(default_factory=dict)
    servers: Sequence[ServiceProcess] = ()
    connections: int | None = None  # instead of the settings' number
    items_per_request: int = 1
    # Called after each run until the server has done all the work the run left it (metrics_service
    # folds queued events into its aggregates after answering): that time counts in the figure's rate.
    settle: Callable[[], object] | None = None


@dataclass(frozen=True)
class Round:
    """One wrk run."""

    requests: int
    seconds: float  # wrk's own measured duration
    non_2xx: int
    socket_errors: int  # connect, read, write errors and timeouts
    p50_ms: float
    p99_ms: float
    threads: int
    wall: float  # seconds the wrk process lived
    generator_cpu: float  # wrk's user + system CPU seconds
    server_cpu: float  # the servers' user + system CPU seconds over the same interval
    first_error: str = ""
    settle_seconds: float = 0.0  # after wrk ended, until the target's settle() returned

    @property
    def generator_share(self) -> float:
        """The share of its threads' time wrk was on a CPU (1.0: every thread busy throughout)."""
        return self.generator_cpu / (self.wall * self.threads) if self.wall else 0.0


@dataclass(frozen=True)
class Figure:
    """A target's rounds together: rate over all of them, latency percentiles as the median of the
    rounds' own, generator share as the worst round's."""

    name: str
    rounds: tuple[Round, ...]
    items_per_request: int = 1

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def rate(self) -> float:
        """Items (requests, or events for batches) per second, the time to settle included."""
        seconds = sum(r.seconds + r.settle_seconds for r in self.rounds)
        return self.requests * self.items_per_request / seconds if seconds else 0.0

    @property
    def settle_seconds(self) -> float:
        return sum(r.settle_seconds for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r.non_2xx + r.socket_errors for r in self.rounds)

    @property
    def first_error(self) -> str:
        return next((r.first_error for r in self.rounds if r.first_error), "")

    @property
    def generator_share(self) -> float:
        return max(r.generator_share for r in self.rounds)

    @property
    def generator_threads(self) -> int:
        return self.rounds[0].threads

    @property
    def saturated(self) -> bool:
        return self.generator_share > SATURATED

    @property
    def server_cores(self) -> float:
        """CPU cores the servers used on average while loaded (and settling)."""
        wall = sum(r.wall + r.settle_seconds for r in self.rounds)
        return sum(r.server_cpu for r in self.rounds) / wall if wall else 0.0


def ratio(figure: Figure, ceiling: Figure) -> float | None:
    """figure's rate over the ceiling's, or None when either cannot be trusted: its generator was
    saturated, or requests failed."""
    if figure.saturated or ceiling.saturated or figure.errors or ceiling.errors or not ceiling.rate:
        return None
    return figure.rate / ceiling.rate


def parse(output: str) -> dict:
    """The JSON line the Lua scripts' done() prints."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{output[-2000:]}")


def run(target: Target, seconds: int, threads: int, connections: int) -> Round:
    """Load target for `seconds` with wrk; a nonce of its own keeps this run's ids apart from every other's."""
    args = {**target.args, "nonce": str(secrets.randbits(31))}
    command = [wrk_path(), f"-t{threads}", f"-c{max(connections, threads)}", f"-d{seconds}s",
               f"--timeout={TIMEOUT}", "--latency", f"--script={LUA / target.script}", target.url,
               *(f"{key}={value}" for key, value in args.items())]
    pids = [pid for server in target.servers for pid in server.pids()]
    with tempfile.TemporaryFile() as out:
        server_before = cpu_seconds(pids)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU accounting, all its threads
        wall = time.perf_counter() - started
        settle_seconds = 0.0
        if target.settle is not None:
            target.settle()
            settle_seconds = time.perf_counter() - started - wall
        server_cpu = cpu_seconds(pids) - server_before
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{output[-2000:]}")
    figures = parse(output)
    return Round(
        requests=figures["requests"], seconds=figures["duration_us"] / 1e6, non_2xx=figures["non_2xx"],
        socket_errors=figures["socket_errors"], p50_ms=figures["p50_us"] / 1000, p99_ms=figures["p99_us"] / 1000,
        threads=figures["threads"], wall=wall, generator_cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=server_cpu, first_error=figures["first_error"], settle_seconds=settle_seconds)


def load(target: Target, settings: Settings, seconds: int | None = None) -> Round:
    """One run with the settings' threads and connections (or the target's own number)."""
    return run(target, seconds or settings.seconds, settings.threads, target.connections or settings.connections)


def compare(targets: Sequence[Target], settings: Settings, warmup: int = 1) -> dict[str, Figure]:
    """Every target warmed up for `warmup` seconds, then loaded in turn, settings.rounds times
    round-robin: the noise of a shared machine falls on each of them alike, so their ratios hold."""
    runs: dict[str, list[Round]] = {target.name: [] for target in targets}
    for target in targets:
        if warmup:
            load(target, settings, warmup)
    for _ in range(settings.rounds):
        for target in targets:
            runs[target.name].append(load(target, settings))
    return {target.name: Figure(target.name, tuple(runs[target.name]), target.items_per_request)
            for target in targets}
