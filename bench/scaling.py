"""Past one instance: one and two instances of each Flask service on one PostgreSQL database behind
nginx, each instance pinned to a core of its own, loaded through the proxy in alternating rounds.

An instance is the shipped gunicorn configuration with one worker (one core's worth: a worker is one
process under one GIL), started under `taskset`. The page's figure is new visitors (`GET /` through
the shipped nginx template, its landing upstream listing every landing instance) with every instance
of ab_service and metrics_service behind them (landing instance i reports to instance i); the ingest
figure is single events of first-time visitors to `POST /events`, through a server block of the same
proxy whose upstream lists every metrics_service instance. Each service keeps its tables in a schema
of its own in the one database, shared by its instances (the landing outbox too).

Beside the rates: the rows PostgreSQL inserted and updated per stored event (from its statistics of
the metrics schemas), and the CPU PostgreSQL's backends serving these services used per 1,000 events
(their connections carry an application_name of their own): what docs/scaling.md's capacity model
is built from.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.ingest import BATCH, settled
from bench.page import start_experiments
from bench.services import INGEST_KEY, Servers
from bench.settings import Settings
from bench.wrk import Figure, Round, Target, compare, load
from harness.processes import ServiceProcess, cpu_seconds, free_port
from harness.proxy import MAIN_CONFIG, TEMPLATE, nginx_path, render_template

INSTANCES = (1, 2)
APPLICATION = "landing-lab-bench"  # the application_name of the services' PostgreSQL connections
DRAIN_SECONDS = 300.0
SECRET = "bench-scaling-secret"  # one for every landing instance, so any of them reads another's cookie

# The ingest entrance: a server block beside the shipped template's, with the same proxy settings.
INGEST_SERVER = """
upstream metrics {{
{servers}
    keepalive 16;
    keepalive_timeout 4s;
}}

server {{
    listen {listen} default_server;
    keepalive_timeout 15s;
    proxy_set_header Host $host;
    proxy_set_header Connection "";
    location / {{
        proxy_pass http://metrics;
    }}
}}
"""


@dataclass(frozen=True)
class Stack:
    """One configuration: its instances, the proxy in front, and its schemas' names."""

    instances: int
    page_url: str
    ingest_url: str
    processes: list[ServiceProcess]
    metrics: list[ServiceProcess]
    metrics_schema: str
    landing_schema: str


@dataclass(frozen=True)
class Scaling:
    figures: dict[str, Figure]  # "page 1", "page 2", "ingest 1", "ingest 2"
    rows_per_event: float  # rows inserted or updated in the metrics schema per event stored
    events: int
    postgres_ms_per_event: float  # PostgreSQL backend CPU per event, single-event ingest through 2 instances
    ingest_rate: float  # events/s of that measurement
    bytes_per_event: float = 0.0  # the metrics schemas' tables and indexes over the events stored
    postgres_ms_per_batched_event: float = 0.0  # the same, batches of BATCH first-time visitors' events
    batch_rate: float = 0.0  # events/s of that measurement


def schema_of(url: str) -> str:
    return make_url(url).query["options"].removeprefix("-csearch_path=")


def with_application(url: str, service: str) -> str:
    return make_url(url).update_query_dict({"application_name": f"{APPLICATION} {service}"}).render_as_string(
        hide_password=False)


def plain(url: str) -> str:
    """A psycopg connection string for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").set(query={}).render_as_string(hide_password=False)


def start_nginx(servers: Servers, prefix: Path, landing_ports: list[int], metrics_ports: list[int],
                ab_ports: list[int]) -> tuple[str, str]:
    """nginx with the shipped template (landing upstream: every landing instance) and the ingest
    server block; returns the page's and the ingest's base URLs."""
    nginx = nginx_path()
    if nginx is None:
        raise RuntimeError("nginx not found (apt-get install nginx)")
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    page_port, ingest_port = free_port(), free_port()
    def upstream(ports: list[int]) -> str:  # the template's `server ${NAME};` becomes one line per instance
        return ";\n    server ".join(f"127.0.0.1:{port}" for port in ports)

    config = render_template(TEMPLATE.read_text(), {
        "LANDING_LISTEN": f"127.0.0.1:{page_port}", "DASHBOARD_LISTEN": f"127.0.0.1:{free_port()}",
        "LANDING_UPSTREAM": upstream(landing_ports), "DASHBOARD_UPSTREAM": f"127.0.0.1:{free_port()}",
        "AB_UPSTREAM": upstream(ab_ports)})
    config += INGEST_SERVER.format(servers="\n".join(f"    server 127.0.0.1:{port};" for port in metrics_ports),
                                   listen=f"127.0.0.1:{ingest_port}")
    (prefix / "conf.d" / "landing-lab.conf").write_text(config)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(MAIN_CONFIG.format(prefix=prefix, user=user))
    process = ServiceProcess(name="nginx", command=[nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                                    "-e", str(prefix / "error.log")],
                             env=dict(os.environ), port=page_port, log_path=prefix / "nginx.out")
    servers._stack.callback(process.stop)
    process.start(30)
    return f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{ingest_port}"


def stack(servers: Servers, base_url: str, instances: int) -> Stack:
    """`instances` of each service, instance i of each pinned to core i (modulo the machine's)."""
    urls = {service: with_application(servers.schema(base_url), service)
            for service in ("ab_service", "metrics_service", "landing")}
    cores = os.cpu_count() or 1
    processes, metrics, landing_ports, ab_ports = [], [], [], []
    for i in range(instances):
        common = {"WEB_CONCURRENCY": "1", "SECRET_KEY": SECRET}
        ab = servers.gunicorn("ab_service", f"ab_service {instances}.{i}", cpu=i % cores,
                              DATABASE_URL=urls["ab_service"], **common)
        if i == 0:
            start_experiments(ab)
        metric = servers.gunicorn("metrics_service", f"metrics_service {instances}.{i}", cpu=i % cores,
                                  DATABASE_URL=urls["metrics_service"], **common)
        page = servers.gunicorn("landing", f"landing {instances}.{i}", cpu=i % cores,
                                DATABASE_URL=urls["landing"], AB_SERVICE_URL=ab.url,
                                METRICS_SERVICE_URL=metric.url, **common)
        processes += [page, ab, metric]
        metrics.append(metric)
        landing_ports.append(page.port)
        ab_ports.append(ab.port)
    page_url, ingest_url = start_nginx(servers, servers.data / f"nginx-{instances}", landing_ports,
                                       [m.port for m in metrics], ab_ports)
    return Stack(instances, page_url, ingest_url, processes, metrics, schema_of(urls["metrics_service"]),
                 schema_of(urls["landing"]))


def postgres_backends(base_url: str) -> list[int]:
    """The backends serving metrics_service's connections."""
    with psycopg.connect(plain(base_url)) as db:
        return [pid for (pid,) in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                             (f"{APPLICATION} metrics_service",))]


def drain(base_url: str, stacks: list[Stack], timeout: float = DRAIN_SECONDS) -> None:
    """Wait until the landing instances' outboxes have delivered the page views' events, so that
    what PostgreSQL does next is the ingest measured and nothing else."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(plain(base_url), autocommit=True) as db:
        while time.monotonic() < deadline:
            queued = sum(db.execute(f'SELECT count(*) FROM "{configuration.landing_schema}".outbox '
                                    "WHERE rejected IS NULL").fetchone()[0] for configuration in stacks)
            if not queued:
                return
            time.sleep(1)
    raise RuntimeError(f"the landing outboxes still held events after {timeout:.0f} s")


def rows_written(base_url: str, schema: str) -> tuple[int, int, int]:
    """(rows inserted or updated in the schema's tables, events stored, bytes of its tables and indexes)."""
    with psycopg.connect(plain(base_url)) as db:
        db.execute("SELECT pg_stat_force_next_flush()")
        changed, size = db.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0), coalesce(sum(pg_total_relation_size(relid)), 0) "
            "FROM pg_stat_user_tables WHERE schemaname = %s", (schema,)).fetchone()
        events = db.execute(f'SELECT count(*) FROM "{schema}".events').fetchone()[0]
    return int(changed), int(events), int(size)


def scaling(settings: Settings, data: Path, memory: list) -> Scaling:
    base = settings.database_url
    with Servers(data / "scaling", memory, "one and two instances") as servers:
        stacks = {n: stack(servers, base, n) for n in INSTANCES}
        args = {"key": INGEST_KEY}
        targets = []
        for n, configuration in stacks.items():
            targets.append(Target(f"page {n}", configuration.page_url, "page.lua", {}, configuration.processes))
        for n, configuration in stacks.items():
            targets.append(Target(f"ingest {n}", configuration.ingest_url, "events.lua", args,
                                  configuration.metrics, settle=settled(configuration.ingest_url)))
        figures = compare(targets, settings)
        drain(base, list(stacks.values()))
        two = stacks[max(INSTANCES)]
        # each run waits for its events to be folded (a readout settles them): their PostgreSQL CPU,
        # their rows and their rate include the aggregates, as every ingest figure does
        single, postgres = postgres_cpu(base, Target("ingest", two.ingest_url, "events.lua", args, two.metrics,
                                                     settle=settled(two.ingest_url)), settings)
        batched, postgres_batched = postgres_cpu(
            base, Target("batch", two.ingest_url, "batch.lua", {**args, "size": str(BATCH)}, two.metrics,
                         connections=settings.batch_connections, items_per_request=BATCH,
                         settle=settled(two.ingest_url)), settings)
        for configuration in stacks.values():  # the page rounds' events too, before rows are counted
            settled(configuration.ingest_url)()
        time.sleep(1)
        changed = events = size = 0
        for configuration in stacks.values():
            rows, stored, used = rows_written(base, configuration.metrics_schema)
            changed, events, size = changed + rows, events + stored, size + used
        return Scaling(figures, changed / events if events else 0.0, events,
                       1000 * postgres / single.requests if single.requests else 0.0,
                       single.requests / (single.seconds + single.settle_seconds),
                       size / events if events else 0.0,
                       1000 * postgres_batched / (batched.requests * BATCH) if batched.requests else 0.0,
                       batched.requests * BATCH / (batched.seconds + batched.settle_seconds))


def postgres_cpu(base_url: str, target: Target, settings: Settings) -> tuple[Round, float]:
    """One run of target, and the CPU seconds PostgreSQL's backends serving the services used meanwhile."""
    backends = postgres_backends(base_url)
    before = cpu_seconds(backends)
    run = load(target, settings)
    return run, cpu_seconds(backends) - before
