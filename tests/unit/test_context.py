import pytest

from landing.context import referrer_host, user_agent_facts, visitor_attributes

CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.0 Mobile/15E148 Safari/604.1")
SAFARI_IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/16.0 Mobile/15E148 Safari/604.1")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0 Safari/537.36")
ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/120.0 Mobile Safari/537.36")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(("ua", "device", "browser", "os"), [
    (CHROME_WINDOWS, "desktop", "Chrome", "Windows"),
    (SAFARI_IPHONE, "mobile", "Mobile Safari", "iOS"),
    (SAFARI_IPAD, "tablet", "Mobile Safari", "iOS"),
    (ANDROID_TABLET, "tablet", "Chrome", "Android"),
    (ANDROID_PHONE, "mobile", "Chrome", "Android"),
    (FIREFOX_LINUX, "desktop", "Firefox", "Linux"),
    ("", "desktop", "other", "other"),
])
def test_user_agent_is_reduced_to_device_browser_and_os(ua, device, browser, os):
    assert user_agent_facts(ua)[:3] == (device, browser, os)


def test_crawlers_are_recognised():
    assert user_agent_facts(GOOGLEBOT)[3] is True
    assert user_agent_facts(CHROME_WINDOWS)[3] is False


@pytest.mark.parametrize(("referrer", "host"), [
    ("https://www.Google.com/search?q=secret+words", "www.google.com"),
    ("https://user:pass@news.example.org:8443/a/b?c=d#e", "news.example.org"),
    ("not a url", None),
    ("http://[::1", None),
    ("", None),
    (None, None),
])
def test_referrer_keeps_the_host_only(referrer, host):
    assert referrer_host(referrer) == host


def test_attributes_of_a_campaign_visit():
    attributes = visitor_attributes(
        "v-1", True, SAFARI_IPHONE,
        {"utm_source": "  Google ", "utm_medium": "CPC", "utm_campaign": "x" * 100, "utm_term": "ignored"},
        "https://t.co/abc?ref=1", "/pricing",
    )
    assert attributes == {"id": "v-1", "device": "mobile", "browser": "Mobile Safari", "os": "iOS",
                          "path": "/pricing", "returning": True, "utm_source": "google", "utm_medium": "cpc",
                          "utm_campaign": "x" * 64, "referrer_host": "t.co"}


def test_attributes_without_context_are_minimal():
    attributes = visitor_attributes("v-2", False, None, {"utm_source": "   "}, None, "")
    assert attributes == {"id": "v-2", "device": "desktop", "browser": "other", "os": "other", "path": "/",
                          "returning": False}


def exposure(ua="", query=None, referrer=None, path="/", country=None):
    from landing.context import exposure_context

    return exposure_context(visitor_attributes("v", False, ua, query or {}, referrer, path), country)


def test_exposure_context_holds_words_derived_from_the_request():
    context = exposure(SAFARI_IPHONE, {"utm_source": "  Google ", "utm_medium": "CPC", "utm_campaign": "Spring_Sale"},
                       "https://www.Example.org/some/page?q=private", country="DE")
    assert context == {"device": "mobile", "browser": "Mobile Safari", "os": "iOS", "utm_source": "google",
                       "utm_medium": "cpc", "utm_campaign": "spring_sale", "referrer_host": "www.example.org",
                       "path": "/", "country": "DE"}
    assert exposure(CHROME_WINDOWS) == {"device": "desktop", "browser": "Chrome", "os": "Windows", "path": "/"}
    assert exposure(CHROME_WINDOWS, {"utm_campaign": "X" * 100})["utm_campaign"] == "x" * 64


@pytest.mark.parametrize("value", ["https://evil.example/steal?x=1", "someone@example.com", "a=b&c=d",
                                   "<script>", "../../etc/passwd", "\u00e9t\u00e9"])
def test_exposure_context_drops_what_is_not_a_short_word(value):
    context = exposure(CHROME_WINDOWS, {"utm_source": value, "utm_campaign": value})
    assert "utm_source" not in context and "utm_campaign" not in context


@pytest.mark.parametrize("referrer", ["http://203.0.113.50/private", "https://[2001:db8::1]/x", "javascript:alert(1)"])
def test_a_referrer_without_a_site_name_is_left_out(referrer):
    assert "referrer_host" not in exposure(CHROME_WINDOWS, referrer=referrer)


def test_an_odd_path_is_left_out():
    assert "path" not in exposure(CHROME_WINDOWS, path="/a@b.c/?")


def test_country_from_a_maxmind_database(tmp_path):
    from landing.geo import Countries
    from tests.helpers import country_database

    path = country_database(tmp_path / "countries.mmdb", {"203.0.113.0/24": "FR", "2001:db8::/32": "DE"})
    countries = Countries(str(path))
    assert countries.country("203.0.113.7") == "FR"
    assert countries.country("2001:db8::5") == "DE"
    assert countries.country("198.51.100.1") is None  # not in the database
    assert countries.country("not an address") is None and countries.country(None) is None
    countries.close()
    assert Countries("").country("203.0.113.7") is None  # no database configured


def test_the_user_agent_cache_keeps_at_most_the_parsed_prefix_of_hostile_headers():
    """A client sending ever-different 8 KB User-Agents must not fill the worker's memory: the cache
    is keyed by the prefix the parser reads, so what differs after it adds no entry."""
    from landing.context import MAX_USER_AGENT, _user_agent_facts

    prefix = CHROME_WINDOWS.ljust(MAX_USER_AGENT, "x")
    user_agent_facts(prefix)
    before = _user_agent_facts.cache_info().currsize
    for i in range(50):
        assert user_agent_facts(prefix + f"{i}" * 8000) == user_agent_facts(prefix)
    assert _user_agent_facts.cache_info().currsize == before
