"""The Experiments page's pure parts: equal weights, checks next to fields, overrides, preview links, the
sentence a confirmation asks, and the admin sessions behind a reload (dashboard/editing.py, session.py,
cookie.py)."""
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dashboard.cookie import COOKIE, BrowserIdMiddleware, valid
from dashboard.editing import (
    describe_changes,
    equal_shares,
    key_problem,
    names_problem,
    namespace_problem,
    overrides_of,
    parse_condition,
    preview_url,
    start_consequence,
    supports_content,
    weights_problem,
)
from dashboard.session import SessionStore

FLAGS = {"cta_text": {"key": "cta_text", "type": "string", "value": "Get started"},
         "layout": {"key": "layout", "type": "string", "value": "centered", "allowed": ["centered", "split"]}}


@pytest.mark.parametrize("count", range(2, 11))
def test_equal_shares_sum_to_one(count):
    shares = equal_shares(count)
    assert len(shares) == count and weights_problem(shares) is None
    assert max(shares) - min(shares) < 1e-5


def test_checks_said_next_to_their_fields():
    assert weights_problem([0.7, 0.7]) == "Weights sum to 1.400; they must sum to 1."
    assert key_problem("") and key_problem("has space") and key_problem("x" * 65) and key_problem("hero_test") is None
    assert names_problem(["A", "A"]) == "Variant names must be different."
    assert names_problem(["A", ""]) and names_problem(["A", "B C"]) and names_problem(["A", "B"]) is None
    assert namespace_problem("hero", 0.5, 0.5) and namespace_problem("", 0, 1)
    assert namespace_problem("hero", 0, 0.5) is None


def test_a_condition_is_a_json_object_or_nothing():
    assert parse_condition("  ") == (None, None)
    assert parse_condition('{"utm_source": "newsletter"}') == ({"utm_source": "newsletter"}, None)
    assert parse_condition("[1]")[1].startswith("A condition is a JSON object")
    value, problem = parse_condition('{"utm_source": }')
    assert value is None and problem.startswith("Not valid JSON:") and "line 1" in problem
    assert "2048" in parse_condition('{"a": "' + "x" * 3000 + '"}')[1]


def test_a_variant_overrides_only_what_differs_from_the_flag():
    assert overrides_of({"cta_text": "Start free", "layout": "centered"}, FLAGS) == {"cta_text": "Start free"}
    assert overrides_of({"cta_text": "Get started"}, FLAGS) == {}


def test_preview_links_name_experiment_and_variant():
    assert preview_url("http://127.0.0.1:8080", "hero_test", "B") == \
        "http://127.0.0.1:8080/?force_variant=hero_test:B"
    assert preview_url("https://lab.example", "a&b", "c d") == "https://lab.example/?force_variant=a%26b:c%20d"


def test_a_confirmation_names_what_will_change():
    old = {"coverage": 1.0, "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]}
    new = {"coverage": 0.8, "variants": [{"name": "A", "weight": 0.4, "overrides": {}},
                                         {"name": "B", "weight": 0.6, "overrides": {"cta_text": "Go"}}]}
    assert describe_changes(old, new) == [
        "coverage: 100% → 80%",
        "weights: A 50%, B 50% → A 40%, B 60%",
        "content of B: the flags' values → cta_text = Go",
    ]
    assert describe_changes(old, old) == []
    experiment = {"coverage": 1.0, "variants": new["variants"]}
    assert start_consequence(experiment) == ("100% of eligible visitors will be split A 40%, B 60%, and see their "
                                             "variant's cta_text.")


def test_content_editing_needs_an_ab_service_that_serves_it():
    assert not supports_content([{"key": "landing", "variants": [{"name": "A", "weight": 1}]}])
    assert supports_content([{"key": "x", "namespace": None, "condition": None,
                              "variants": [{"name": "A", "weight": 1, "overrides": {}}]}])


def test_sessions_end_when_their_time_is_up_and_on_sign_out():
    store = SessionStore()
    store.remember("browser-1", "token", seconds=60)
    assert store.recall("browser-1") == "token" and store.recall("browser-2") is None
    assert "token" not in str(store.entries.keys())  # kept under a hash of the browser id
    store.remember("browser-3", "other", seconds=0.01)
    time.sleep(0.02)
    assert store.recall("browser-3") is None
    store.forget("browser-1")
    assert store.recall("browser-1") is None


def call(middleware, headers):
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "scheme": "http", "path": "/", "headers": headers}
    # In a thread of its own: an earlier browser test in this process may leave an event loop running here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(app)(scope, None, send)).result()
    return dict((k.decode(), v.decode()) for k, v in sent[0]["headers"] if k == b"set-cookie")


def test_the_browser_id_cookie_is_set_once_http_only_and_strict():
    cookie = call(BrowserIdMiddleware, [])["set-cookie"]
    name, value = cookie.split(";")[0].split("=", 1)
    assert name == COOKIE and valid(value)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert call(BrowserIdMiddleware, [(b"cookie", f"{COOKIE}={value}".encode())]) == {}
    assert "set-cookie" in call(BrowserIdMiddleware, [(b"cookie", f"{COOKIE}=forged".encode())])
    assert "Secure" in call(BrowserIdMiddleware, [(b"x-forwarded-proto", b"https")])["set-cookie"]


def test_schedule_times_are_utc_both_ways():
    from datetime import UTC, date, datetime, time

    from dashboard.editing import schedule_iso, schedule_parts, schedule_text

    assert schedule_iso(date(2030, 5, 1), time(9, 30)) == "2030-05-01T09:30:00Z"
    assert schedule_parts("2030-05-01T11:30:15.250+02:00", datetime.now(UTC)) == (date(2030, 5, 1), time(9, 30))
    default = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
    assert schedule_parts(None, default) == (date(2031, 1, 2), time(3, 4))
    assert schedule_text({"start_at": "2030-05-01T09:30:00.000Z", "stop_at": None}) == "starts 2030-05-01 09:30 UTC"
    assert schedule_text({"start_at": None, "stop_at": "2030-05-08T18:00:00.000Z"}) == "stops 2030-05-08 18:00 UTC"
    assert schedule_text({"key": "x"}) == ""
