"""Bodies sent with `Transfer-Encoding: chunked` meet the same limit (413) and checks (NUL: 400) as bodies
with a Content-Length, on each Flask service under gunicorn with the shipped config."""
import http.client
import json
import socket
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from core.settings import DEFAULT_MAX_BODY_BYTES
from harness.processes import ADMIN_TOKEN, INGEST_KEY, base_env, flask_service, start_stack

pytestmark = pytest.mark.integration

EVENT = {"visitor_id": "chunked-visitor", "variant": "A", "event_type": "page_view"}
# (service, path, headers, a good body, what a good body is answered with)
ROUTES = [
    ("ab", "/config", {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"cta_text": "Sent in chunks"}, 200),
    ("metrics", "/events", {"Authorization": f"Bearer {INGEST_KEY}"}, EVENT, 202),
    ("landing", "/track", {"Cookie": f"ll_vid={uuid.uuid4()}"}, {"event_type": "cta_click"}, 202),
]


def post_chunked(url: str, body: bytes, headers: dict[str, str], chunk: int = 4096) -> tuple[int, dict]:
    """POST body in chunks of `chunk` bytes with Transfer-Encoding: chunked (no Content-Length)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=(body[i:i + chunk] for i in range(0, len(body), chunk)),
                     headers={"Content-Type": "application/json", **headers}, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def unfinished_chunked_status(url: str, body: bytes, headers: dict[str, str]) -> int:
    """Send body as one chunk but never the final zero-length chunk; the status line answered meanwhile."""
    parts = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **headers}.items())
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTransfer-Encoding: chunked\r\n"
                     f"{head}\r\n{len(body):x}\r\n".encode() + body + b"\r\n")
        return int(sock.recv(4096).split(b" ", 2)[1])


def padded(payload, size: int) -> bytes:
    """payload as JSON followed by spaces up to exactly size bytes (still valid JSON)."""
    body = json.dumps(payload).encode()
    return body + b" " * (size - len(body))


def with_nul(payload) -> bytes:
    field = next(iter(payload))
    return json.dumps({**payload, field: "a\u0000b"}).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("chunked"), with_dashboard=False)
    yield stack
    stack.stop()


@pytest.fixture
def pg_metrics(tmp_path, pg_schema_url):
    service = flask_service("metrics_service", tmp_path, base_env(tmp_path, DATABASE_URL=pg_schema_url())).start()
    yield service
    service.stop()


def stored_events(metrics_url: str) -> int:
    return requests.get(f"{metrics_url}/stats", timeout=5).json()["total_events"]


@pytest.mark.parametrize("service,path,headers,good,ok", ROUTES, ids=[r[0] for r in ROUTES])
def test_chunked_bodies_are_held_to_the_body_limit(stack, service, path, headers, good, ok):
    url = getattr(stack, service).url + path
    assert post_chunked(url, json.dumps(good).encode(), headers)[0] == ok
    assert post_chunked(url, padded(good, DEFAULT_MAX_BODY_BYTES), headers)[0] == ok
    status, body = post_chunked(url, padded(good, DEFAULT_MAX_BODY_BYTES + 1), headers)
    assert status == 413 and body["error"] == "request_entity_too_large"
    # The limit is known as soon as it is passed: no waiting for the end of an endless body.
    assert unfinished_chunked_status(url, padded(good, DEFAULT_MAX_BODY_BYTES + 10_000), headers) == 413
    # The same oversized body with a Content-Length gets the same answer.
    sized = requests.post(url, data=padded(good, DEFAULT_MAX_BODY_BYTES + 1), timeout=10,
                          headers={"Content-Type": "application/json", **headers})
    assert sized.status_code == 413


@pytest.mark.parametrize("service,path,headers,good,ok", ROUTES, ids=[r[0] for r in ROUTES])
def test_chunked_bodies_with_nul_characters_are_refused(stack, service, path, headers, good, ok):
    url = getattr(stack, service).url + path
    for body in (with_nul(good), json.dumps({**good, "x": "\\u0000"}).encode()):
        status, answer = post_chunked(url, body, headers)
        assert (status, answer["error"]) == (400, "invalid_input")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_chunked_nul_event_is_refused_on_both_backends(request, stack, backend):
    metrics = stack.metrics if backend == "sqlite" else request.getfixturevalue("pg_metrics")
    before = stored_events(metrics.url)
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    for event in ({**EVENT, "visitor_id": "nul\u0000visitor"}, {**EVENT, "properties": {"note": "a\u0000b"}}):
        status, answer = post_chunked(f"{metrics.url}/events", json.dumps([event]).encode(), headers, chunk=7)
        assert (status, answer["error"]) == (400, "invalid_input")
    assert stored_events(metrics.url) == before
    assert post_chunked(f"{metrics.url}/events", json.dumps([EVENT]).encode(), headers, chunk=7)[0] == 202
    assert stored_events(metrics.url) == before + 1
