"""The stack as production runs it with reads closed (no PUBLIC_READS): the landing service still shows
the flags ab_service serves (read with its viewer token) and still delivers its events (with the
ingest key); stats answer a viewer token, 401 without one and 403 to a viewer who writes."""
import pytest
import requests

from harness.processes import ADMIN_TOKEN, LANDING_TOKEN, start_stack, wait_for

pytestmark = pytest.mark.integration

ANN = "ann-viewer-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {ANN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("roles"), with_dashboard=False, PUBLIC_READS="false",
                        API_TOKENS=f"landing:viewer:{LANDING_TOKEN},ann:viewer:{ANN}")
    yield stack
    stack.stop()


def test_reads_need_a_token_and_writes_the_editor_role(stack):
    assert requests.get(f"{stack.metrics.url}/stats", timeout=5).status_code == 401
    assert requests.get(f"{stack.ab.url}/flags", timeout=5).status_code == 401
    assert requests.get(f"{stack.ab.url}/flags", headers=VIEWER, timeout=5).status_code == 200
    refused = requests.patch(f"{stack.ab.url}/flags/cta_text", json={"value": "x"}, headers=VIEWER, timeout=5)
    assert refused.status_code == 403 and refused.json()["required_role"] == "editor"
    assert requests.get(f"{stack.ab.url}/assign", params={"visitor_id": "v1"}, timeout=5).status_code == 200


def test_the_landing_service_reads_with_its_token_and_sends_with_its_key(stack):
    requests.patch(f"{stack.ab.url}/flags/cta_text", json={"value": "Read with a viewer token"}, headers=ADMIN,
                   timeout=5).raise_for_status()
    wait_for(lambda: "Read with a viewer token" in requests.get(stack.landing.url + "/", timeout=10).text,
             timeout=10, interval=0.1)
    wait_for(lambda: requests.get(f"{stack.metrics.url}/stats", headers=VIEWER,
                                  timeout=5).json()["total_events"] >= 1, timeout=20)
