"""Known crawlers, by User-Agent: their events are stored flagged and left out of stats."""
from __future__ import annotations

import re

# Self-declared crawlers and link previewers. Headless browsers and HTTP libraries are not listed:
# they are also how teams test their own pages, and a false positive silently drops real data.
BOT_PATTERN = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|facebookexternalhit|embedly|bingpreview|ahrefs|semrush|"
    r"yandex|baiduspider|duckduckgo|petalbot|bytespider|gptbot|ccbot|applebot|pinterest|"
    r"whatsapp|telegrambot|discordbot|slackbot|linkedinbot|twitterbot|google-inspectiontool",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    return bool(user_agent) and bool(BOT_PATTERN.search(user_agent))
