"""User text as plain text in Streamlit (pure).

Streamlit renders labels, help tooltips, headers and alert messages as Markdown, and has no plain-text
option for them: a flag description holding `![x](https://elsewhere/pixel)` would be fetched when its
tooltip opens. Every text that comes from a user or a service goes through `plain` before it reaches
one of those places.
"""
from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark (and in the GFM, math and
# directive syntax Streamlit adds), and then stands for itself.
PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
NO_BREAK_SPACE = "\u00a0"


def plain(text: object) -> str:
    """text escaped so that Markdown shows it as it is: no image, link, emphasis, heading, list, HTML,
    math or directive can start; line breaks stay line breaks and leading spaces stay (as no-break
    spaces, so that an indented line does not become a code block)."""
    lines = re.sub(r"\r\n?", "\n", str(text))
    escaped = PUNCTUATION.sub(r"\\\1", lines)
    escaped = INDENT.sub(lambda m: NO_BREAK_SPACE * len(m.group().expandtabs(4)), escaped)
    return escaped.replace("\n", "  \n")
