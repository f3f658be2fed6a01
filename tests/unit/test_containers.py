"""No Docker engine runs here: these tests read the compose file and Dockerfile and check what they promise."""
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from harness.proxy import TEMPLATE, template_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = {"ab_service": 5002, "metrics_service": 5001, "landing": 8080, "dashboard": 8081}
FLASK = ["ab_service", "metrics_service", "landing"]
GUNICORN_FLAGS = ("--workers", "-w", "--threads", "--worker-class", "-k", "--graceful-timeout", "--timeout")


def service(name):
    return COMPOSE["services"][name]


def command(name):
    value = service(name)["command"]
    return value if isinstance(value, list) else value.split()


@pytest.mark.parametrize("name,port", SERVICES.items())
def test_services_are_reachable_only_on_the_compose_network(name, port):
    assert "ports" not in service(name)
    assert service(name)["expose"] == [str(port)]


def test_only_the_proxy_publishes_ports_for_landing_and_dashboard():
    published = {name: spec["ports"] for name, spec in COMPOSE["services"].items() if "ports" in spec}
    assert published == {"proxy": ["8080:8080", "8081:8081"]}
    proxy = service("proxy")
    assert re.fullmatch(r"nginx:\d+\.\d+-alpine", proxy["image"])
    assert proxy["environment"]["LANDING_UPSTREAM"] == "landing:8080"
    assert proxy["environment"]["DASHBOARD_UPSTREAM"] == "dashboard:8081"
    assert proxy["environment"]["AB_UPSTREAM"] == "ab_service:5002"
    assert proxy["environment"]["LANDING_LISTEN"] == "8080"
    assert proxy["environment"]["DASHBOARD_LISTEN"] == "8081"
    assert proxy["depends_on"] == {"landing": {"condition": "service_healthy"},
                                   "dashboard": {"condition": "service_healthy"},
                                   "ab_service": {"condition": "service_healthy"}}
    assert "http://127.0.0.1:8080/health" in proxy["healthcheck"]["test"]


def test_the_proxy_runs_the_config_file_the_tests_start():
    """The nginx image renders /etc/nginx/templates/*.template into conf.d with its environment; the
    mounted file is the one harness/proxy.py renders for the proxy tests, and compose sets each of its
    names. It replaces the image's default.conf, so no other server answers on the proxy's ports."""
    [mount] = service("proxy")["volumes"]
    source, target, mode = mount.split(":")
    assert (ROOT / source).resolve() == TEMPLATE
    assert target == "/etc/nginx/templates/default.conf.template" and mode == "ro"
    assert template_variables(TEMPLATE.read_text()) == set(service("proxy")["environment"])


def test_landing_trusts_exactly_the_proxy_for_client_addresses():
    assert service("landing")["environment"]["TRUSTED_PROXY_HOPS"] == "1"


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


@pytest.mark.parametrize("cmd", [command(name) for name in FLASK] + [json.loads(re.search(
    r"^CMD\s+(.+)$", DOCKERFILE, re.MULTILINE).group(1))], ids=[*FLASK, "Dockerfile"])
def test_gunicorn_settings_come_from_the_shipped_config_file(cmd):
    assert cmd[cmd.index("-c") + 1] == "gunicorn.conf.py"
    assert not set(cmd) & set(GUNICORN_FLAGS)
    assert re.search(r"^COPY\s.*\bgunicorn\.conf\.py\b.*\./$", DOCKERFILE, re.MULTILINE)
    assert DOCKERFILE.count("WORKDIR /app") == 1


def test_the_image_carries_the_dashboards_streamlit_settings():
    """The theme (its colours pass WCAG AA) and XSRF protection live in .streamlit/config.toml."""
    assert re.search(r"^COPY \.streamlit/ \.streamlit/$", DOCKERFILE, re.MULTILINE)
    assert "[theme]" in (ROOT / ".streamlit" / "config.toml").read_text()


def test_dashboard_runs_streamlit_on_8081():
    cmd = command("dashboard")
    assert cmd[:3] == ["streamlit", "run", "dashboard/server.py"]
    assert cmd[cmd.index("--server.port") + 1] == "8081"
    assert (ROOT / "dashboard" / "server.py").is_file()


def test_named_volumes_hold_the_databases():
    declared = set(COMPOSE["volumes"])
    for name in ["ab_service", "metrics_service", "landing"]:
        [mount] = service(name)["volumes"]
        volume, target = mount.split(":")
        assert volume in declared and target == "/data"
    assert service("ab_service")["environment"]["DATABASE_URL"].endswith("sqlite:////data/ab_service.db}")


class ReadRecorder(dict):
    """An empty environment that remembers which variables were looked up."""

    def __init__(self):
        super().__init__()
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("name", ["metrics_service", "landing", "ab_service"])
def test_ingest_key_has_no_default(name):
    assert service(name)["environment"]["INGEST_KEY"] == "${INGEST_KEY:?set INGEST_KEY}"


@pytest.mark.parametrize("name", SERVICES)
def test_environment_names_are_the_ones_the_code_reads(name):
    environ = ReadRecorder()
    Settings.from_env(name, environ=environ)
    assert set(service(name).get("environment", {})) <= environ.read


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

