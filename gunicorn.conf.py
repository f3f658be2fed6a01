"""Production settings for the Flask services on a 2-core machine:

    gunicorn -c gunicorn.conf.py --bind 0.0.0.0:5001 "metrics_service:create_app()"

Two worker processes (one per core) with eight threads each: requests spend most of their time
waiting on SQLite/PostgreSQL or on another service, so threads keep both cores busy.
"""
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
keepalive = 5
graceful_timeout = 20  # SIGTERM: finish in-flight requests, then exit (the landing outbox flushes at exit)
timeout = 30
accesslog = None
