"""The visitor attributes experiments target, derived from one request and nothing kept of the rest.

Low-cardinality values only: the User-Agent is reduced to a device class and browser and OS
families (parsed with `ua-parser`, then discarded), the referrer to its host, campaign parameters to
short lower-case words. Pure functions: the view passes in what it read from the request.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import ua_parser

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
MAX_VALUE = 64
MAX_USER_AGENT = 512  # 4,096 cached entries of at most 512 characters: at most about 2 MB
UNKNOWN = "other"
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|windows phone|blackberry|opera mini", re.IGNORECASE)


def clean(value: str | None) -> str | None:
    """Trimmed, lower-cased and at most 64 characters; None when nothing is left."""
    if not value:
        return None
    value = value.strip().lower()[:MAX_VALUE]
    return value or None


def user_agent_facts(user_agent: str) -> tuple[str, str, str, bool]:
    """(device class, browser family, OS family, crawler?) for a User-Agent string (its first
    MAX_USER_AGENT characters: what the parser reads, and what the cache keeps per entry)."""
    return _user_agent_facts(user_agent[:MAX_USER_AGENT])


@lru_cache(maxsize=4096)
def _user_agent_facts(user_agent: str) -> tuple[str, str, str, bool]:
    if not user_agent:
        return "desktop", UNKNOWN, UNKNOWN, False
    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else UNKNOWN
    os_family = parsed.os.family if parsed.os else UNKNOWN
    crawler = bool(parsed.device and parsed.device.family == "Spider")
    if _TABLET.search(user_agent):
        device = "tablet"
    elif _MOBILE.search(user_agent):
        device = "mobile"
    else:
        device = "desktop"
    return device, browser[:MAX_VALUE], os_family[:MAX_VALUE], crawler


def referrer_host(referrer: str | None) -> str | None:
    """The referring site's host name only (no path, query or credentials)."""
    if not referrer:
        return None
    try:
        host = urlsplit(referrer.strip()).hostname
    except ValueError:
        return None
    return clean(host)


def visitor_attributes(visitor_id: str, returning: bool, user_agent: str | None, query: Mapping[str, str],
                       referrer: str | None, path: str) -> dict[str, Any]:
    """GrowthBook attributes for one page view: id, device, browser, os, utm_*, referrer_host, path, returning."""
    device, browser, os_family, _ = user_agent_facts(user_agent or "")
    attributes: dict[str, Any] = {"id": visitor_id, "device": device, "browser": browser, "os": os_family,
                                  "path": (path or "/")[:MAX_VALUE], "returning": returning}
    for name in UTM_FIELDS:
        value = clean(query.get(name))
        if value:
            attributes[name] = value
    host = referrer_host(referrer)
    if host:
        attributes["referrer_host"] = host
    return attributes


# A stored dimension value is a short word: letters, digits, spaces and ._+- (a URL, an e-mail address or
# anything with a slash, colon, @, ? or = in it is not one, and is dropped).
_WORD = re.compile(r"^[a-z0-9][a-z0-9 ._+-]*$", re.IGNORECASE)
_PATH = re.compile(r"^/[a-z0-9/._-]*$", re.IGNORECASE)


def word(value: str | None) -> str | None:
    """value when it is a short word (see _WORD), else None."""
    return value if value and len(value) <= MAX_VALUE and _WORD.match(value) else None


def _site_host(host: str | None) -> str | None:
    """A referring host name; an address (IPv4 or IPv6) is not kept."""
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return word(host)
    return None


def exposure_context(attributes: Mapping[str, Any], country: str | None = None) -> dict[str, str]:
    """The context an exposure event carries (core.events.Context), from the page view's attributes:
    device, browser and OS families, utm_* words, the referrer's host name, the page's path and the
    country. Anything that is not a short word is left out; the User-Agent, the address, the full
    referrer and the query string are never part of it."""
    context = {name: word(attributes.get(name)) for name in ("device", "browser", "os", *UTM_FIELDS)}
    context["referrer_host"] = _site_host(attributes.get("referrer_host"))
    path = attributes.get("path")
    context["path"] = path if isinstance(path, str) and _PATH.match(path) else None
    context["country"] = country
    return {name: value for name, value in context.items() if value}
