"""ab_service started the way production starts it, with no admin token configured: every write and
the audit log are refused, whatever token a client sends; reads still work."""
import pytest
import requests

from harness.processes import ADMIN_TOKEN, base_env, flask_service

pytestmark = pytest.mark.integration

ADMIN_CALLS = [
    ("POST", "/config", {"cta_text": "changed"}),
    ("POST", "/flags", {"key": "new_flag", "type": "boolean", "value": True}),
    ("PATCH", "/flags/cta_text", {"value": "changed"}),
    ("POST", "/experiments", {"key": "hero", "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]}),
    ("PATCH", "/experiments/landing", {"status": "stopped"}),
    ("GET", "/audit", None),
]
HEADERS = [None, "Bearer ", "Bearer  ", f"Bearer {ADMIN_TOKEN}", "Bearer null", "Basic YWRtaW46"]


@pytest.fixture(scope="module")
def ab_without_token(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("no-token")
    env = {k: v for k, v in base_env(data_dir).items() if k not in ("ADMIN_TOKEN", "ADMIN_TOKENS")}
    service = flask_service("ab_service", data_dir, env).start()
    yield service
    service.stop()


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("method,path,body", ADMIN_CALLS, ids=[f"{m} {p}" for m, p, _ in ADMIN_CALLS])
def test_every_admin_call_is_refused(ab_without_token, method, path, body, header):
    headers = {"Authorization": header} if header is not None else {}
    response = requests.request(method, ab_without_token.url + path, json=body, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_nothing_changed_and_reads_still_work(ab_without_token):
    config = requests.get(ab_without_token.url + "/config", timeout=10).json()
    assert config["cta_text"] == "Get started"
    keys = [flag["key"] for flag in requests.get(ab_without_token.url + "/flags", timeout=10).json()["flags"]]
    assert "new_flag" not in keys
    experiments = requests.get(ab_without_token.url + "/experiments", timeout=10).json()["experiments"]
    assert [(e["key"], e["status"]) for e in experiments] == [("landing", "running")]
