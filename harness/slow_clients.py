"""Hostile slow clients, and ordinary visitors timed beside them.

`SlowClients` holds many connections open, each sending its request a byte at a time (headers, or the
body of a POST after complete headers), the way a slowloris attack does. `timed_gets` measures what
an ordinary visitor meets meanwhile.
"""
from __future__ import annotations

import itertools
import math
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests


def _endless_headers() -> Iterator[int]:
    """A GET whose headers never end: the request line, then one short header after another."""
    yield from b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow-client\r\n"
    for n in itertools.count():
        yield from f"X-Slow-{n % 50}: {n}\r\n".encode()


def _slow_post() -> tuple[bytes, bytes]:
    """A POST /track: its headers (with a visitor cookie, so the service goes on to read the body) and
    a body of the announced length."""
    body = b'{"event_type": "cta_click", "padding": "' + b"x" * 1000 + b'"}'
    head = (b"POST /track HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Cookie: ll_vid=" + str(uuid.uuid4()).encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    return head, body


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    to_send: Iterator[int]
    trickle_body: bool


@dataclass
class SlowClients:
    """`count` connections to host:port, each sending one byte every `interval` seconds, from one
    background thread. A `body_share` of them send a POST's headers at once and trickle its body; the
    rest trickle headers. A connection the server closes (or answers) is opened again, as an attacker
    would, so `count` stay open for as long as the block runs."""

    host: str
    port: int
    count: int = 200
    interval: float = 2.0
    body_share: float = 0.25
    opened: int = 0
    closed_by_server: int = 0
    _connections: list[_Connection] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        for index in range(self.count):
            self._connections.append(self._open(trickle_body=index < self.count * self.body_share))
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 10)
        for connection in self._connections:
            connection.sock.close()

    @property
    def open_now(self) -> int:
        return sum(1 for connection in self._connections if connection.sock.fileno() != -1)

    def _open(self, trickle_body: bool) -> _Connection:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        if trickle_body:
            # The headers at once: the server reads them, starts the request and waits for the body.
            head, body = _slow_post()
            sock.sendall(head)
            to_send = iter(body)
        else:
            to_send = _endless_headers()
        sock.setblocking(False)
        self.opened += 1
        return _Connection(sock=sock, to_send=to_send, trickle_body=trickle_body)

    def _run(self) -> None:
        pause = self.interval / self.count
        while not self._stop.is_set():
            answered = self._answered()
            for index, connection in enumerate(self._connections):
                if self._stop.is_set():
                    return
                if connection in answered or not self._send_one(connection):
                    if connection.sock.fileno() != -1:
                        connection.sock.close()
                        self.closed_by_server += 1
                    try:
                        self._connections[index] = self._open(connection.trickle_body)
                    except OSError:
                        continue
                time.sleep(pause)

    def _answered(self) -> set:
        """Connections the server has written to or closed (an answer such as 408 is as good as a close)."""
        with selectors.DefaultSelector() as selector:
            for connection in self._connections:
                if connection.sock.fileno() != -1:
                    selector.register(connection.sock, selectors.EVENT_READ, connection)
            return {key.data for key, _ in selector.select(timeout=0)}

    @staticmethod
    def _send_one(connection: _Connection) -> bool:
        byte = next(connection.to_send, None)
        if byte is None:  # a whole body sent: the request is complete; start another
            return False
        try:
            return connection.sock.send(bytes([byte])) == 1
        except OSError:
            return False


@dataclass
class Timings:
    """Latencies of the requests that succeeded, and how many did not."""

    latencies: list[float]
    failures: list[str]

    @property
    def total(self) -> int:
        return len(self.latencies) + len(self.failures)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def timed_gets(url: str, seconds: float, clients: int = 4, pause: float = 0.3, timeout: float = 5.0) -> Timings:
    """`clients` visitors GET url one after another (a new connection each time, as new visitors make)
    for `seconds`; a request fails on an error status, a connection error or no answer in `timeout` s."""
    timings = Timings(latencies=[], failures=[])
    deadline = time.monotonic() + seconds

    def visitor() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = requests.get(url, timeout=timeout).status_code
                outcome = None if status == 200 else f"status {status}"
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            if outcome is None:
                timings.latencies.append(time.monotonic() - started)
            else:
                timings.failures.append(outcome)
            time.sleep(pause)

    threads = [threading.Thread(target=visitor) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings
