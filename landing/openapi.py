"""The landing service's OpenAPI description, served at /openapi.json and kept true by tests."""
from __future__ import annotations

from typing import Any

from core.openapi import build_spec, health_path, operation, query, ref
from landing.context import UTM_FIELDS

TRACK = {"type": "object", "required": ["event_type"], "properties": {
    "event_type": {"type": "string", "enum": ["cta_click"]},
    "event_id": {"type": "string", "format": "uuid"},
    "forced_variant": {"type": "string", "description": "the page's QA preview: experiment:variant,..."},
}}
SIGNUP = {"type": "object", "required": ["email"], "properties": {
    "email": {"type": "string", "maxLength": 254},
    "event_id": {"type": "string", "format": "uuid"},
    "forced_variant": {"type": "string", "description": "the page's QA preview: experiment:variant,..."},
}}
RECORDED = {"type": "object", "required": ["recorded"], "properties": {
    "recorded": {"type": "string"}, "event_id": {"type": "string"}, "message": {"type": "string"}}}


def spec() -> dict[str, Any]:
    paths = {
        "/health": health_path(),
        "/": {"get": operation("The page with the variants of every experiment the visitor is in (HTML); "
                               "records page_view once per experiment",
                               (200, {"type": "string"}, "text/html"),
                               params=[query("force_variant", {"type": "string"},
                                             description="QA preview: experiment:variant,... (a bare variant: "
                                                         "the landing experiment)"),
                                       query("signed_up", {"type": "string"}),
                                       *(query(name, {"type": "string"}, description="campaign attribute")
                                         for name in UTM_FIELDS)])},
        "/theme.css": {"get": operation("The accent colour the page names, as a CSS variable",
                                        (200, {"type": "string"}, "text/css"),
                                        params=[query("accent", {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                                                      description="#rrggbb; the default colour when absent")])},
        "/track": {"post": operation("Record a CTA click for the visitor in the ll_vid cookie, once per experiment "
                                     "they are in", (202, ref("Recorded")), (400, 429), body=ref("Track"))},
        "/signup": {"post": operation("Sign up (the email address is checked, then dropped); records form_submit "
                                      "once per experiment",
                                      (202, ref("Recorded")), (400, 429), body=ref("Signup"))},
    }
    return build_spec(
        "landing", "Landing Lab landing", "The visitor-facing page and its same-origin event endpoints.",
                      paths, {"Track": TRACK, "Signup": SIGNUP, "Recorded": RECORDED})
