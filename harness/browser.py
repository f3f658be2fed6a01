"""Debian's Chromium, found and launched the same way by the browser tests and `make screenshots`."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# Headless as root on a machine with no outside network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None
