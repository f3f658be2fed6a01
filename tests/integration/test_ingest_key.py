"""metrics_service under gunicorn with the shipped config reads INGEST_KEY from its environment: events
need it, and without it configured ingest is refused. (The landing service sending it is covered by
test_end_to_end, whose stack has the key.)"""
import pytest
import requests

from harness.processes import ADMIN_TOKEN, INGEST_KEY, base_env, flask_service

pytestmark = pytest.mark.integration

EVENTS = [{"visitor_id": "v1", "variant": "A", "event_type": "page_view"}]


@pytest.fixture
def metrics(tmp_path):
    """A factory: metrics_service under gunicorn with base_env changed by **env (None removes a variable)."""
    started = []

    def start(**env):
        data = tmp_path / f"m{len(started)}"
        data.mkdir()
        environ = {k: v for k, v in {**base_env(data), **env}.items() if v is not None}
        started.append(flask_service("metrics_service", data, environ).start())
        return started[-1].url

    yield start
    for service in started:
        service.stop()


def post(url: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(f"{url}/events", json=EVENTS, headers=headers, timeout=10)


def test_events_need_the_ingest_key(metrics):
    url = metrics()
    assert post(url).status_code == 401
    assert post(url, "not-the-key").status_code == 401
    assert post(url, INGEST_KEY).status_code == 202
    assert post(url, ADMIN_TOKEN).status_code == 202
    assert requests.get(f"{url}/stats", timeout=5).json()["total_events"] == 2


def test_without_an_ingest_key_configured_events_are_refused(metrics):
    url = metrics(INGEST_KEY=None)
    for token in (None, "", INGEST_KEY, "anything"):
        response = post(url, token)
        assert response.status_code == 401
        assert "no ingest key configured" in response.json()["message"]
    assert requests.get(f"{url}/stats", timeout=5).json()["total_events"] == 0
