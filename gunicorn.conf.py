"""Production settings for the Flask services on a 2-core machine:

    gunicorn -c gunicorn.conf.py --bind 0.0.0.0:5001 "metrics_service:create_app()"

Two worker processes (one per core) with eight threads each: requests spend most of their time
waiting on SQLite/PostgreSQL or on another service, so threads keep both cores busy.
"""
import ctypes
import ctypes.util
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
keepalive = 5
graceful_timeout = 20  # SIGTERM: finish in-flight requests, then exit (the landing outbox flushes at exit)
timeout = 30
accesslog = None

M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def post_fork(server, worker):
    """At most two malloc arenas per worker. glibc gives threads that allocate at the same time
    arenas of their own (up to eight per core), and each keeps the memory freed into it: with eight
    threads a metrics_service worker held about 20 MB more under load. The GIL serialises most
    allocations anyway. (Not glibc, e.g. musl: nothing to do.)"""
    libc = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(libc), "mallopt", None) if libc else None
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)
