"""The webhook contract every side shares: the events, the headers, and the signature (pure).

A payload is signed like Stripe's: `Landing-Lab-Signature: t=<unix seconds>,v1=<hex>`, where <hex> is
the HMAC-SHA256 of `<t>.<raw body>` keyed with the webhook's secret.
"""
from __future__ import annotations

import hashlib
import hmac

EVENTS = ("experiment.started", "experiment.stopped", "srm.detected", "significance.reached", "guardrail.breached",
          "no_data")
SIGNATURE_HEADER = "Landing-Lab-Signature"
EVENT_HEADER = "Landing-Lab-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_TOLERANCE_SECONDS = 300  # how old a signed timestamp a receiver should accept


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for body, signed at timestamp (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """Whether the header signs the body with the secret, at a time within tolerance of now."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), f"t={timestamp},v1={parts.get('v1', '')}")
