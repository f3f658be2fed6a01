"""Exactly-once from the page under gunicorn with two workers: every acknowledged event is stored once,
with the time of the visit, through worker and service crashes; the landing service always boots."""
from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from core.events import experiment_event_id
from harness.processes import base_env, flask_service, start_stack, wait_for

pytestmark = pytest.mark.integration

UNLIMITED = {"RATE_LIMIT_IP": "10000000/minute", "RATE_LIMIT_VISITOR": "10000000/minute"}


class Traffic:
    """Visitors in many threads: each loads the page and clicks a few times, with event ids of its own.

    Records what the landing service acknowledged (200 for a page, 202 for a click) and what was tried;
    a click whose answer was lost is retried with the same event id, as the page's script would."""

    def __init__(self, url: str, clients: int = 16, clicks_per_page: int = 3):
        self.url = url
        self.clients = clients
        self.clicks_per_page = clicks_per_page
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pages_acked = 0
        self.pages_tried = 0
        self.clicks_acked: dict[str, tuple[float, float]] = {}  # event id -> (sent, answered), epoch seconds
        self.clicks_tried: set[str] = set()
        self.executor: ThreadPoolExecutor | None = None
        self.futures = []

    @property
    def acked(self) -> int:
        with self.lock:
            return self.pages_acked + len(self.clicks_acked)

    def _page(self, browser: requests.Session) -> bool:
        with self.lock:
            self.pages_tried += 1
        try:
            ok = browser.get(self.url + "/", timeout=10).status_code == 200
        except requests.RequestException:
            return False
        if ok:
            with self.lock:
                self.pages_acked += 1
        return ok

    def _click(self, browser: requests.Session) -> None:
        event_id = str(uuid.uuid4())
        with self.lock:
            self.clicks_tried.add(event_id)
        sent = time.time()  # a retry may find the first attempt stored: the event keeps that time
        for _ in range(3):
            try:
                answer = browser.post(self.url + "/track", json={"event_type": "cta_click", "event_id": event_id},
                                      timeout=10)
            except requests.RequestException:
                time.sleep(0.1)
                continue
            if answer.status_code == 202:
                with self.lock:
                    self.clicks_acked[event_id] = (sent, time.time())
            return

    def _visitor_loop(self) -> None:
        while not self.stopping.is_set():
            with requests.Session() as browser:
                if not self._page(browser):
                    time.sleep(0.05)  # the service is restarting
                    continue
                for _ in range(self.clicks_per_page):
                    self._click(browser)

    def start(self) -> Traffic:
        self.executor = ThreadPoolExecutor(self.clients)
        self.futures = [self.executor.submit(self._visitor_loop) for _ in range(self.clients)]
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.executor.shutdown(wait=True)
        for future in self.futures:
            future.result()


def outbox_rows(data_dir) -> int:
    """Events waiting in the landing outbox (new assignments for ab_service wait there too)."""
    with sqlite3.connect(data_dir / "landing.db") as db:
        return db.execute("SELECT count(*) FROM outbox WHERE destination = 'events'").fetchone()[0]


def stored_events(data_dir) -> list[tuple[str, str, int]]:
    """(event_id, event_type, ts in ms) of every event metrics_service stored, read from its database."""
    with sqlite3.connect(data_dir / "metrics_service.db") as db:
        return db.execute("SELECT event_id, event_type, ts FROM events").fetchall()


def stats_by_type(stack) -> dict[str, int]:
    body = requests.get(f"{stack.metrics.url}/stats", params={"experiment": "landing"}, timeout=10).json()
    return {kind: row["events"] for kind, row in body["by_event_type"].items()}


def delivered(stack, data_dir) -> list[tuple[str, str, int]]:
    """Wait until the landing outbox has drained, then what metrics_service stored."""
    wait_for(lambda: outbox_rows(data_dir) == 0, timeout=60, interval=0.5)
    time.sleep(1.5)  # a batch re-sent after the outbox emptied would show up now
    return stored_events(data_dir)


def assert_exactly_once(traffic: Traffic, stack, data_dir) -> list[tuple[str, str, int]]:
    """Every acknowledged event stored once: acknowledged clicks by id, pages by count; nothing stored
    that was not tried, and the stats count each stored event once. Clicks keep the time they were made.
    Every visitor is in the one running experiment, `landing`, so each action is one event, its id
    derived from the click's id and the experiment."""
    rows = delivered(stack, data_dir)
    clicks = [event_id for event_id, kind, _ in rows if kind == "cta_click"]
    times = {event_id: ts / 1000 for event_id, kind, ts in rows if kind == "cta_click"}
    pages = sum(kind == "page_view" for _, kind, _ in rows)
    stored_as = {click: experiment_event_id(click, "landing") for click in traffic.clicks_tried}
    assert len(set(clicks)) == len(clicks)
    missing = {stored_as[click] for click in traffic.clicks_acked} - set(clicks)
    assert not missing, f"{len(missing)} acknowledged clicks lost of {len(traffic.clicks_acked)}"
    assert set(clicks) <= set(stored_as.values())
    assert traffic.pages_acked <= pages <= traffic.pages_tried
    assert stats_by_type(stack) == {"page_view": pages, "cta_click": len(clicks)}
    late = [click for click, (sent, answered) in traffic.clicks_acked.items()
            if not sent - 0.01 <= times[stored_as[click]] <= answered + 0.01]
    assert not late, f"{len(late)} clicks stored with a time outside their request"
    return rows


@pytest.fixture
def stack(tmp_path):
    stack = start_stack(tmp_path, with_dashboard=False, OUTBOX_MAX_BACKOFF_SECONDS="1", **UNLIMITED)
    yield stack
    stack.stop()


def test_two_workers_deliver_every_acknowledged_event(stack, tmp_path):
    """Ordinary traffic, no fault: the two workers' senders share one outbox and lose nothing."""
    traffic = Traffic(stack.landing.url, clients=12).start()
    try:
        wait_for(lambda: traffic.acked >= 1000, timeout=120, interval=0.5)  # however busy the machine
    finally:
        traffic.stop()
    rows = assert_exactly_once(traffic, stack, tmp_path)
    print(f"{traffic.acked} events acknowledged, {len(rows)} stored")


def test_events_keep_the_time_of_the_visit_through_an_outage(stack, tmp_path):
    """metrics_service down while visitors come and for 8 s more: the events are stored with the times
    they were recorded, not the time they were delivered."""
    stack.metrics.stop()
    began = time.time()
    traffic = Traffic(stack.landing.url, clients=4).start()
    time.sleep(2)
    traffic.stop()
    recorded = time.time()
    assert traffic.clicks_acked
    time.sleep(8)
    stack.metrics.start()
    rows = assert_exactly_once(traffic, stack, tmp_path)  # and each click's time within its request
    assert all(began <= ts / 1000 <= recorded for _, _, ts in rows)
    print(f"{traffic.acked} events recorded during the outage, delivered over 8 s later")


def test_landing_boots_on_a_fresh_data_folder_every_time(tmp_path):
    """Two workers set the schema up at once, 20 times over (five starts at a time): every start boots."""

    def boot(number: int) -> str | None:
        folder = tmp_path / f"start{number}"
        folder.mkdir()
        service = flask_service("landing", folder, base_env(folder))
        try:
            return service.boot_problem()
        finally:
            service.stop()

    with ThreadPoolExecutor(5) as pool:
        failures = [log for log in pool.map(boot, range(20)) if log is not None]
    assert not failures, f"{len(failures)} of 20 starts failed; the first:\n{failures[0][-3000:]}"


@pytest.mark.slow
def test_crashes_lose_and_duplicate_no_acknowledged_event(stack, tmp_path):
    """Over 5,000 acknowledged events while the landing service is killed (SIGKILL) as a whole and
    worker by worker at random moments and restarted, and metrics_service is killed and restarted
    once: each acknowledged event is stored exactly once, with the time of the visit."""
    rng = random.Random()
    faults = ["landing", "landing", "landing", "worker", "worker", "worker", "worker", "metrics"]
    rng.shuffle(faults)
    traffic = Traffic(stack.landing.url, clients=16).start()
    try:
        for fault in faults:
            time.sleep(rng.uniform(1.0, 4.0))
            if fault == "worker":
                stack.landing.kill_worker(rng)
                continue
            service = stack.landing if fault == "landing" else stack.metrics
            service.kill()
            time.sleep(rng.uniform(0.0, 1.0))
            service.start()
        wait_for(lambda: traffic.acked >= 5500, timeout=60, interval=0.5)
    finally:
        traffic.stop()
    print(f"faults {faults}: {traffic.acked} events acknowledged ({traffic.pages_acked} pages, "
          f"{len(traffic.clicks_acked)} clicks) of {traffic.pages_tried + len(traffic.clicks_tried)} tried")
    rows = assert_exactly_once(traffic, stack, tmp_path)
    print(f"{len(rows)} stored")
