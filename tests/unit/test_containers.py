"""No Docker engine runs here: these tests read the compose file and Dockerfile and check what they promise."""
import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = {"ab_service": 5002, "metrics_service": 5001, "landing": 8080, "dashboard": 8081}
FLASK = ["ab_service", "metrics_service", "landing"]


def service(name):
    return COMPOSE["services"][name]


def command(name):
    value = service(name)["command"]
    return value if isinstance(value, list) else value.split()


@pytest.mark.parametrize("name,port", SERVICES.items())
def test_each_service_publishes_its_port(name, port):
    assert f"{port}:{port}" in service(name)["ports"]


@pytest.mark.parametrize("name,port", SERVICES.items())
def test_each_service_has_a_healthcheck_on_its_own_port(name, port):
    check = service(name)["healthcheck"]
    text = " ".join(check["test"])
    path = "/_stcore/health" if name == "dashboard" else "/health"
    assert f"127.0.0.1:{port}{path}" in text
    assert check["interval"] and check["retries"] >= 1


@pytest.mark.parametrize("name", ["landing", "dashboard"])
def test_front_services_wait_for_healthy_backends(name):
    depends = service(name)["depends_on"]
    assert depends == {"ab_service": {"condition": "service_healthy"},
                       "metrics_service": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", FLASK)
def test_flask_services_run_under_gunicorn_with_their_factory(name):
    cmd = command(name)
    assert cmd[0] == "gunicorn"
    assert f"{name}:create_app()" in cmd
    assert f"0.0.0.0:{SERVICES[name]}" in cmd
    module = importlib.import_module(name)
    assert callable(module.create_app)


def test_dashboard_runs_streamlit_on_8081():
    cmd = command("dashboard")
    assert cmd[:3] == ["streamlit", "run", "dashboard/app.py"]
    assert cmd[cmd.index("--server.port") + 1] == "8081"
    assert (ROOT / "dashboard" / "app.py").is_file()


def test_named_volumes_hold_the_databases():
    declared = set(COMPOSE["volumes"])
    for name in ["ab_service", "metrics_service", "landing"]:
        [mount] = service(name)["volumes"]
        volume, target = mount.split(":")
        assert volume in declared and target == "/data"
    assert service("ab_service")["environment"]["DATABASE_URL"].endswith("sqlite:////data/ab_service.db}")


def test_admin_token_has_no_default():
    assert service("ab_service")["environment"]["ADMIN_TOKEN"] == "${ADMIN_TOKEN:?set ADMIN_TOKEN}"


def test_environment_names_are_the_ones_the_code_reads():
    settings = (ROOT / "core" / "settings.py").read_text()
    for spec in COMPOSE["services"].values():
        for variable in spec.get("environment", {}):
            if variable.startswith("POSTGRES_"):
                continue
            assert f'"{variable}"' in settings, variable


def test_services_run_as_non_root():
    for name in SERVICES:
        assert service(name)["user"] not in ("root", "0", "0:0")
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index("USER") < DOCKERFILE.index("CMD")


def test_dockerfile_installs_the_project_from_its_files():
    assert re.search(r"^FROM python:3\.11", DOCKERFILE, re.MULTILINE)
    assert "pip install --no-cache-dir ." in DOCKERFILE
    for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source


def test_postgres_profile():
    pg = service("postgres")
    assert pg["profiles"] == ["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "pg_data" in COMPOSE["volumes"]


def test_procfile_starts_the_four_services_on_their_ports():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == set(SERVICES)
    for name, port in SERVICES.items():
        assert str(port) in lines[name]
