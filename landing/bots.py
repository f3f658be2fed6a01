"""Known crawlers, by User-Agent: their events are stored flagged and left out of stats."""
from __future__ import annotations

import re
from functools import lru_cache

# Self-declared crawlers and link previewers. Headless browsers and HTTP libraries are not listed:
# they are also how teams test their own pages, and a false positive silently drops real data.
BOT_PATTERN = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|facebookexternalhit|embedly|bingpreview|ahrefs|semrush|"
    r"yandex|baiduspider|duckduckgo|petalbot|bytespider|gptbot|ccbot|applebot|pinterest|"
    r"whatsapp|telegrambot|discordbot|slackbot|linkedinbot|twitterbot|google-inspectiontool",
    re.IGNORECASE,
)


CACHED = 4096  # User-Agent strings remembered per process (a site's visitors send few distinct ones)
CACHED_LENGTH = 512  # longer ones are matched every time, so the cache stays small


def is_bot(user_agent: str | None) -> bool:
    if not user_agent:
        return False
    if len(user_agent) > CACHED_LENGTH:
        return _matches(user_agent)
    return _cached(user_agent)


def _matches(user_agent: str) -> bool:
    return bool(BOT_PATTERN.search(user_agent))


_cached = lru_cache(maxsize=CACHED)(_matches)
