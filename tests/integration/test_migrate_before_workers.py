"""gunicorn's master brings each service's database to the newest schema once, before it starts the
workers (gunicorn.conf.py's on_starting): a long migration is not cut short by a worker's timeout, and
the workers start on a current schema."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from harness.processes import base_env, flask_service

pytestmark = pytest.mark.integration
VERSION_TABLES = {"ab_service": "alembic_version_ab", "metrics_service": "alembic_version_metrics",
                  "landing": "alembic_version_landing"}


@pytest.mark.parametrize("name", sorted(VERSION_TABLES))
def test_the_master_migrates_before_any_worker_boots(tmp_path, name):
    database = tmp_path / f"{name}.db"
    service = flask_service(name, tmp_path, base_env(tmp_path, DATABASE_URL=f"sqlite:///{database}"))
    service.start()
    try:
        log = service.log_path.read_text()
        migrating = log.find(f"Migrating the database of {name} before the workers start")
        booting = log.find("Booting worker")
        assert 0 <= migrating < booting, log
        with sa.create_engine(f"sqlite:///{database}").connect() as conn:
            [version] = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLES[name]}")).scalars()
        assert version  # the schema is at a revision, which the workers found current
    finally:
        service.stop()
