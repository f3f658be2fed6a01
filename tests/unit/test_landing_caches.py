"""The landing page's per-process caches give what the uncached code gives, and stay bounded."""
from __future__ import annotations

import uuid

from flask import Flask
from werkzeug.wrappers import Response

from core.events import parse_events
from landing import views
from landing.bots import is_bot
from landing.sticky import StickyCookie


def test_a_cached_cookie_check_hands_out_copies_and_still_refuses_tampering():
    sticky = StickyCookie("secret")
    value = sticky.dumps({"hero": "B", "landing": "A"})
    assert sticky.dumps({"landing": "A", "hero": "B"}) == value
    first = sticky.loads(value)
    first["hero"] = "C"
    assert sticky.loads(value) == {"hero": "B", "landing": "A"}
    assert sticky.loads(value[:-1] + ("A" if value[-1] != "A" else "B")) == {}
    assert StickyCookie("other secret").loads(value) == {}


def test_the_page_cache_keeps_the_most_recently_used_pages_only():
    cache = views.PageCache(size=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # now the most recent
    cache.put("c", "C")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")


def test_set_cookie_headers_match_werkzeugs_own():
    app = Flask(__name__)
    for secure in (False, True):
        url = "https://example.com/" if secure else "http://example.com/"
        for value in (str(uuid.uuid4()), "eyJoZXJvIjoiQiJ9.abc-_", 'needs "quoting"; here'):
            with app.test_request_context(url):
                ours, theirs = Response(), Response()
                views._set_cookie(ours, "ll_vid", value)
                theirs.set_cookie("ll_vid", value, max_age=views.COOKIE_MAX_AGE, samesite="Lax", httponly=True,
                                  secure=secure)
                assert ours.headers.getlist("Set-Cookie") == theirs.headers.getlist("Set-Cookie")


def test_events_built_from_cached_shapes_are_what_the_shared_schema_writes():
    app = Flask(__name__)
    visitor = str(uuid.uuid4())
    for user_agent in ("Mozilla/5.0 Chrome/124.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"):
        with app.test_request_context("/", headers={"User-Agent": user_agent}):
            for properties, context in ((None, None), ({"path": "/"}, {"device": "mobile", "utm_source": "news"})):
                events = views._events(visitor, {"hero": "B", "landing": "A"}, "page_view", str(uuid.uuid4()),
                                       False, properties, context)
                expected = [e.model_dump(mode="json", exclude_none=True) for e in parse_events(events)]
                assert events == expected
                assert all(e["bot"] is is_bot(user_agent) for e in events)
