"""An event whose fold fails for good, under gunicorn with the shipped config: the database itself
refuses one visitor's aggregate row (a trigger or a CHECK constraint, standing for data the fold
cannot take). The readouts answer without it, /health says so, an admin finds it, and once the cause
is gone a rebuild (the service stopped) counts it."""
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import text

from core.db import make_engine
from harness.processes import ADMIN_TOKEN, INGEST_KEY, ROOT, base_env, flask_service

pytestmark = pytest.mark.integration

REFUSE = {  # the visitor "refused" can have no visitor_state row
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON visitor_state WHEN NEW.visitor_id = 'refused' "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": ["ALTER TABLE visitor_state ADD CONSTRAINT refuse CHECK (visitor_id <> 'refused')"],
}
REFUSED_ERROR = {"sqlite": "IntegrityError at ", "postgresql": "CheckViolation (SQLSTATE 23514) at "}
ACCEPT = {"sqlite": ["DROP TRIGGER refuse"], "postgresql": ["ALTER TABLE visitor_state DROP CONSTRAINT refuse"]}


def run_sql(url: str, statements: list[str]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_an_event_the_database_refuses_to_fold_is_set_aside_listed_and_rebuilt(tmp_path, db_url, backend):
    service = flask_service("metrics_service", tmp_path, base_env(tmp_path, DATABASE_URL=db_url)).start()
    try:
        run_sql(db_url, REFUSE[backend])
        now = datetime.now(UTC).isoformat()
        refused = str(uuid.uuid4())
        batch = [{"visitor_id": f"v{n}", "variant": "AB"[n % 2], "event_type": "page_view", "timestamp": now}
                 for n in range(19)]
        batch.insert(7, {"visitor_id": "refused", "variant": "A", "event_type": "page_view", "timestamp": now,
                         "event_id": refused})
        answer = requests.post(f"{service.url}/events", json=batch, timeout=30,
                               headers={"Authorization": f"Bearer {INGEST_KEY}"})
        assert answer.json() == {"accepted": 20, "duplicates": 0}
        assert requests.get(f"{service.url}/stats", timeout=30).json()["total_events"] == 19  # no waiting on it
        health = requests.get(f"{service.url}/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert {k: health.json()["folding"][k] for k in ("queued", "failed")} == {"queued": 0, "failed": 1}
        [failure] = requests.get(f"{service.url}/events/fold-failures", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["failures"]
        assert failure["event_id"] == refused
        assert failure["error"].startswith(REFUSED_ERROR[backend])
    finally:
        service.stop()

    run_sql(db_url, ACCEPT[backend])  # the cause is gone
    rebuilt = subprocess.run([sys.executable, "-m", "flask", "--app", "metrics_service", "rebuild-aggregates"],
                             cwd=ROOT, env=base_env(tmp_path, DATABASE_URL=db_url), capture_output=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr.decode()
    service.start()
    try:
        assert requests.get(f"{service.url}/stats", timeout=30).json()["total_events"] == 20
        assert requests.get(f"{service.url}/health", timeout=10).json()["status"] == "ok"
    finally:
        service.stop()
