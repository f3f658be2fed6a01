"""The production path: nginx with the config file compose deploys, in front of the landing service
under gunicorn (shipped config, two workers) and the dashboard under Streamlit."""
import base64
import hashlib
import http.client
import json
import os
import socket
import time
import uuid

import pytest
import requests

from core.settings import DEFAULT_CLIENT_KEY, DEFAULT_MAX_BODY_BYTES
from harness.processes import start_stack, wait_for
from harness.proxy import start_proxy
from harness.slow_clients import SlowClients, timed_gets
from tests.helpers import landing_variant_shown, require_nginx

pytestmark = pytest.mark.integration

PER_ADDRESS_LIMIT = 5
SLOW_CLIENTS = 200
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_nginx()
    stack = start_stack(tmp_path_factory.mktemp("proxied-stack"), TRUSTED_PROXY_HOPS="1",
                        RATE_LIMIT_IP=f"{PER_ADDRESS_LIMIT}/minute")
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def proxy(stack, tmp_path_factory):
    proxy = start_proxy(tmp_path_factory.mktemp("nginx"), stack.landing.port, stack.dashboard.port,
                        ab_port=stack.ab.port)
    yield proxy
    proxy.stop()


def visitor_cookie() -> dict[str, str]:
    return {"ll_vid": str(uuid.uuid4())}


def click_of_size(size: int) -> bytes:
    """A valid /track body of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = b'{"event_type": "cta_click"}'
    return body + b" " * (size - len(body))


def test_the_landing_page_is_served_through_the_proxy(proxy):
    page = requests.get(proxy.url + "/", timeout=10)
    assert page.status_code == 200
    assert landing_variant_shown(page.text) in ("A", "B")
    assert "ll_vid" in page.cookies
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]  # the landing service's own
    assert page.headers["Server"] == "nginx"  # no version, and not gunicorn's


def test_the_features_payload_and_nothing_else_of_ab_service_is_published(proxy, stack):
    """GrowthBook SDKs outside the network read /api/features/<client key> through the proxy; the
    rest of ab_service (assignment, definitions, writes) stays internal."""
    through = requests.get(f"{proxy.url}/api/features/{DEFAULT_CLIENT_KEY}", timeout=10)
    direct = requests.get(f"{stack.ab.url}/api/features/{DEFAULT_CLIENT_KEY}", timeout=10)
    assert through.status_code == 200
    assert through.json()["features"] == direct.json()["features"] and "landing" in str(through.json())
    assert requests.post(f"{proxy.url}/api/features/{DEFAULT_CLIENT_KEY}", json={}, timeout=10).status_code == 403
    for path in ("/experiments", "/flags", "/assign?visitor_id=v1"):
        assert requests.get(proxy.url + path, timeout=10).status_code == 404  # the landing service's 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_a_json_413_from_the_proxy(proxy, chunked):
    body = click_of_size(DEFAULT_MAX_BODY_BYTES + 1)
    data = (body[start:start + 16384] for start in range(0, len(body), 16384)) if chunked else body
    answer = requests.post(proxy.url + "/track", data=data, cookies=visitor_cookie(),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 413
    assert answer.json()["error"] == "request_entity_too_large"


def test_a_body_at_the_limit_reaches_the_service(proxy):
    answer = requests.post(proxy.url + "/track", data=click_of_size(DEFAULT_MAX_BODY_BYTES),
                           cookies=visitor_cookie(), headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 202, answer.text


def track_from(address: str, port: int, forged_for: str | None = None) -> int:
    """POST /track from a given loopback address (Linux routes all of 127/8 to this machine)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    headers = {"Content-Type": "application/json", "Cookie": f"ll_vid={uuid.uuid4()}"}
    if forged_for:
        headers["X-Forwarded-For"] = forged_for
    try:
        connection.request("POST", "/track", body=json.dumps({"event_type": "cta_click"}), headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_landing_limits_each_client_by_its_own_address_behind_the_proxy(proxy):
    """The per-address limit on /track (RATE_LIMIT_IP) needs the client's address, not the proxy's:
    nginx appends it to X-Forwarded-For and landing trusts that one hop, so a forged header gets a
    client nowhere and another client keeps its own allowance."""
    forging = [track_from("127.0.0.2", proxy.port, forged_for=f"203.0.113.{n}") for n in range(3 * PER_ADDRESS_LIMIT)]
    assert forging[:PER_ADDRESS_LIMIT] == [202] * PER_ADDRESS_LIMIT
    assert 429 in forging
    assert [track_from("127.0.0.3", proxy.port) for _ in range(PER_ADDRESS_LIMIT)] == [202] * PER_ADDRESS_LIMIT


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_the_dashboard_is_served_through_the_proxy_with_the_headers_streamlit_cannot_set(proxy):
    health = requests.get(proxy.dashboard_url + "/_stcore/health", timeout=10)
    assert (health.status_code, health.text) == (200, "ok")
    page = requests.get(proxy.dashboard_url + "/", timeout=10)
    assert page.status_code == 200 and '<div id="root">' in page.text
    for answer in (page, health):
        csp = csp_directives(answer.headers["Content-Security-Policy"])
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["default-src"] == csp["connect-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(csp["script-src"])
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "same-origin"


def websocket_handshake(port: int, origin: str) -> tuple[int, dict[str, str], str]:
    """Open Streamlit's WebSocket as a browser would; the status, headers, and the accept value expected."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: {origin}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line, *lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
    return int(status_line.split()[1]), headers, accept


def test_the_dashboard_websocket_opens_through_the_proxy(proxy):
    status, headers, accept = websocket_handshake(proxy.dashboard_port, origin=proxy.dashboard_url)
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-accept"] == accept


def test_a_websocket_from_another_site_is_still_refused_through_the_proxy(proxy):
    """Streamlit compares the Origin with the Host it is given: the proxy passes the client's Host on."""
    status, _, _ = websocket_handshake(proxy.dashboard_port, origin="https://attacker.example")
    assert status == 403


@pytest.mark.slow
def test_slow_clients_cannot_starve_the_page_behind_the_proxy(proxy):
    """200 connections trickle a request a byte every 2 s (150 headers, 50 a POST body); ordinary
    visitors meanwhile all get the page, 95% of them within a second (a starved page would keep them
    waiting for a free worker thread: seconds each, then failures; the suite's other tests share the
    two cores, so a visit or two can stall that long without any slow client)."""
    with SlowClients("127.0.0.1", proxy.port, count=SLOW_CLIENTS, interval=2.0, body_share=0.25) as attack:
        time.sleep(4)  # every slow client has started its request
        visits = timed_gets(proxy.url + "/", seconds=15, clients=4, pause=0.3, timeout=5)
        still_open = attack.open_now
    print(f"\n{SLOW_CLIENTS} slow clients: {visits.total} visits, {len(visits.failures)} failed, "
          f"p50 {visits.percentile(0.5) * 1000:.0f} ms, p99 {visits.percentile(0.99) * 1000:.0f} ms, "
          f"max {max(visits.latencies) * 1000:.0f} ms; {attack.closed_by_server} slow connections cut by the proxy")
    assert still_open == SLOW_CLIENTS
    assert visits.total >= 100
    assert visits.failures == []
    assert visits.percentile(0.95) < 1.0
    # The 150 header tricklers were cut after 10 s (client_header_timeout) and came back.
    assert attack.closed_by_server >= SLOW_CLIENTS * 0.75


def page_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.slow
def test_the_same_slow_clients_starve_gunicorn_served_directly(stack):
    """The limit README states for the directly served path (and the proof that the attack above is
    real): gunicorn's gthread worker gives a connection a thread from its first byte until the request
    is read, so slow clients take all 2 x 8 threads and no visitor is answered while they stay."""
    with SlowClients("127.0.0.1", stack.landing.port, count=SLOW_CLIENTS, interval=2.0, body_share=0.25):
        time.sleep(4)
        visits = timed_gets(stack.landing.url + "/", seconds=8, clients=4, pause=0.3, timeout=3)
    print(f"\n{SLOW_CLIENTS} slow clients, gunicorn served directly: {len(visits.latencies)} of {visits.total} "
          f"visits answered")
    assert visits.total >= 4
    assert visits.latencies == []
    wait_for(lambda: page_answers(stack.landing.url + "/"), timeout=30)
