"""The landing service's OpenAPI description, served at /openapi.json and kept true by tests."""
from __future__ import annotations

from typing import Any

from core.openapi import build_spec, health_path, operation, query, ref

TRACK = {"type": "object", "required": ["event_type"], "properties": {
    "event_type": {"type": "string", "enum": ["cta_click"]},
    "event_id": {"type": "string", "format": "uuid"},
    "forced_variant": {"type": "string"},
}}
SIGNUP = {"type": "object", "required": ["email"], "properties": {
    "email": {"type": "string", "maxLength": 254},
    "event_id": {"type": "string", "format": "uuid"},
    "forced_variant": {"type": "string"},
}}
RECORDED = {"type": "object", "required": ["recorded"], "properties": {
    "recorded": {"type": "string"}, "event_id": {"type": "string"}, "message": {"type": "string"}}}


def spec() -> dict[str, Any]:
    paths = {
        "/health": health_path(),
        "/": {"get": operation("The page for the visitor's variant (HTML); records page_view",
                               (200, {"type": "string"}, "text/html"),
                               params=[query("force_variant", {"type": "string"}, description="QA override"),
                                       query("signed_up", {"type": "string"})])},
        "/theme.css": {"get": operation("The visitor's accent colour as a CSS variable",
                                        (200, {"type": "string"}, "text/css"))},
        "/track": {"post": operation("Record a CTA click for the visitor in the ll_vid cookie", (202, ref("Recorded")),
                                     (400, 429), body=ref("Track"))},
        "/signup": {"post": operation("Sign up (the email address is checked, then dropped); records form_submit",
                                      (202, ref("Recorded")), (400, 429), body=ref("Signup"))},
    }
    return build_spec("Landing Lab landing", "The visitor-facing page and its same-origin event endpoints.",
                      paths, {"Track": TRACK, "Signup": SIGNUP, "Recorded": RECORDED})
