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
