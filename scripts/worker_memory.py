"""Each metrics_service worker's resident memory as new visitors arrive: the figure in the README.

    python scripts/worker_memory.py [VISITORS] [DATABASE_URL]

Starts metrics_service under gunicorn with the shipped config (two workers) on a temporary SQLite
file (or the database named), sends VISITORS new visitors (default 1,000,000) in batches of 1,000
from four threads, and prints each worker's RSS every 100,000 visitors.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.processes import base_env, flask_service, resident_bytes  # noqa: E402
from harness.traffic import send_new_visitors  # noqa: E402


def main() -> None:
    visitors = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    extra = {"DATABASE_URL": sys.argv[2]} if len(sys.argv) > 2 else {}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        metrics = flask_service("metrics_service", data, base_env(data, **extra)).start()
        started = time.monotonic()

        def report(sent: int) -> None:
            sizes = ", ".join(f"{mb:.0f}" for mb in [resident_bytes(pid) / 2**20 for pid in metrics.worker_pids()])
            print(f"{sent:>10,} visitors  {time.monotonic() - started:6.0f} s  worker RSS MB: {sizes}", flush=True)

        try:
            report(0)
            send_new_visitors(metrics.url, visitors, every=100_000, report=report)
        finally:
            metrics.stop()


if __name__ == "__main__":
    main()
