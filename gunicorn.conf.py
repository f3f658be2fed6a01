"""Production settings for the Flask services on a 2-core machine:

    gunicorn -c gunicorn.conf.py --bind 0.0.0.0:5001 "metrics_service:create_app()"

Two worker processes (one per core) with eight threads each: requests spend most of their time
waiting on SQLite/PostgreSQL or on another service, so threads keep both cores busy.
"""
import ctypes
import ctypes.util
import importlib
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
keepalive = 5
graceful_timeout = 20  # SIGTERM: finish in-flight requests, then exit (the landing outbox flushes at exit)
timeout = 30
accesslog = None
# No control socket (gunicorn 24+): every instance on a machine would share its one default path.
control_socket_disable = True

M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def on_starting(server):
    """Migrate the service's database once, in the master, before any worker starts: a migration that
    rebuilds aggregates on a large database can take longer than a worker's `timeout` (each worker
    would be killed and restarted in the middle of it); each worker then finds the schema current.
    The app's package names the step (`init_schema(engine)`); the settings are the workers' own."""
    from core.migrate import migrate_database
    from core.settings import Settings

    uri = getattr(server.app, "app_uri", None) or server.cfg.wsgi_app or ""
    package = importlib.import_module(uri.partition(":")[0].split(".")[0]) if uri else None
    init_schema = getattr(package, "init_schema", None)
    if init_schema is not None:
        server.log.info("Migrating the database of %s before the workers start", package.__name__)
        migrate_database(Settings.from_env(package.__name__).database_url, init_schema)


def post_fork(server, worker):
    """At most two malloc arenas per worker. glibc gives threads that allocate at the same time
    arenas of their own (up to eight per core), and each keeps the memory freed into it: with eight
    threads a metrics_service worker held about 20 MB more under load. The GIL serialises most
    allocations anyway. (Not glibc, e.g. musl: nothing to do.)"""
    libc = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(libc), "mallopt", None) if libc else None
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)
