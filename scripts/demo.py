"""`make demo`: two weeks of realistic traffic sent through the real APIs into a running `make run` stack.

Creates a handful of experiments in ab_service (admin token from data/admin_token) and sends the
events of about 5,000 visitors over the last 14 days to metrics_service (with the ingest key from
data/ingest_key when there is one), so the dashboard has something to show:

- `landing` (built in): B wins on signups;
- `cta_copy`: three call-to-action texts, no real difference;
- `promo_banner`: a sample ratio mismatch (visitors of B get lost, as with a broken redirect);
- `testimonials_test`: stopped after its first week;
- `accent_test`: a draft, not started.

Visitors are bucketed with the same hash as the services; every event has a fixed id, so running the
demo again stores nothing twice.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.bucketing import assign_variant  # noqa: E402

DAYS = 14
EVENT_NAMESPACE = uuid.UUID("6f1c2f4e-5d1a-4f0e-9a51-1a2b3c4d5e6f")
BATCH = 500  # events per request: with their contexts, well under MAX_BODY_BYTES


@dataclass
class Demo:
    """One demo experiment: its definition, and per variant the chance a visitor clicks and signs up."""

    key: str
    description: str
    variants: list[dict[str, Any]]
    click: dict[str, float]
    signup: dict[str, float]  # of those who clicked
    status: str = "running"
    days: tuple[int, int] = (0, DAYS)  # days ago it ran: from, to (0 = today)
    lose: dict[str, float] = field(default_factory=dict)  # share of a variant's visitors never recorded


EXPERIMENTS = [
    # B signs up 9.2% -> 14.5% of visitors: at about 2,300 visitors a variant the always-valid test calls it
    # in all but about 0.3% of draws (it was 9.2% -> 13.0%, missed in about 16%).
    Demo("landing", "Landing page headline and layout",
         [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}],
         click={"A": 0.22, "B": 0.29}, signup={"A": 0.42, "B": 0.50}),
    Demo("cta_copy", "Which call-to-action text gets more clicks",
         [{"name": "A", "weight": 0.34, "overrides": {}},
          {"name": "B", "weight": 0.33, "overrides": {"cta_text": "Start free"}},
          {"name": "C", "weight": 0.33, "overrides": {"cta_text": "Try it now"}}],
         click={"A": 0.24, "B": 0.245, "C": 0.238}, signup={"A": 0.44, "B": 0.44, "C": 0.44}, days=(0, 10)),
    Demo("promo_banner", "A bigger launch discount",
         [{"name": "A", "weight": 0.5, "overrides": {}},
          {"name": "B", "weight": 0.5, "overrides": {"promo_discount_percent": 30}}],
         click={"A": 0.24, "B": 0.26}, signup={"A": 0.44, "B": 0.45}, days=(0, 8), lose={"B": 0.22}),
    Demo("testimonials_test", "Does hiding testimonials cost signups?",
         [{"name": "A", "weight": 0.5, "overrides": {}},
          {"name": "B", "weight": 0.5, "overrides": {"show_testimonials": False}}],
         click={"A": 0.24, "B": 0.23}, signup={"A": 0.44, "B": 0.41}, status="stopped", days=(7, DAYS)),
    Demo("accent_test", "A warmer accent colour",
         [{"name": "A", "weight": 0.5, "overrides": {}},
          {"name": "B", "weight": 0.5, "overrides": {"accent_color": "#c2410c"}}],
         click={}, signup={}, status="draft", days=(0, 0)),
]


def read_secret(data_dir: Path, name: str, env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    path = data_dir / name
    return path.read_text().strip() if path.exists() else None


def supports_content(ab_url: str, token: str) -> bool:
    """Whether this ab_service takes variant overrides (older ones refuse the field)."""
    experiments = requests.get(f"{ab_url}/experiments", headers={"Authorization": f"Bearer {token}"},
                               timeout=10).json()["experiments"]
    return bool(experiments) and all("overrides" in v for e in experiments for v in e["variants"])


def define(ab_url: str, token: str, demo: Demo, content: bool) -> None:
    """Create the experiment (or bring an existing one to the demo's status)."""
    headers = {"Authorization": f"Bearer {token}"}
    variants = [v if content else {"name": v["name"], "weight": v["weight"]} for v in demo.variants]
    existing = requests.get(f"{ab_url}/experiments/{demo.key}", headers=headers, timeout=10)
    if existing.status_code == 404:
        body = {"key": demo.key, "description": demo.description, "variants": variants,
                "status": "draft" if demo.status == "draft" else "running"}
        requests.post(f"{ab_url}/experiments", json=body, headers=headers, timeout=10).raise_for_status()
    elif existing.json()["status"] == "draft" and demo.status != "draft":
        requests.patch(f"{ab_url}/experiments/{demo.key}", json={"status": "running"}, headers=headers,
                       timeout=10).raise_for_status()
    if demo.status == "stopped":
        current = requests.get(f"{ab_url}/experiments/{demo.key}", headers=headers, timeout=10).json()["status"]
        if current != "stopped":
            requests.patch(f"{ab_url}/experiments/{demo.key}", json={"status": "stopped"}, headers=headers,
                           timeout=10).raise_for_status()


def visits(seed: int, now: datetime) -> list[tuple[str, datetime]]:
    """About 5,000 visitors over DAYS days: more on weekdays, more by day than by night. Each day draws
    from a generator of its own (the seed and how many days ago it is), so a day's visitors stay the
    same whatever the time of day: a later clock only adds today's later visitors."""
    hours = [0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.35, 0.6, 0.9, 1.1, 1.2, 1.2, 1.15, 1.2, 1.25, 1.2, 1.1, 1.0, 0.9,
             0.85, 0.8, 0.7, 0.55, 0.4]
    result = []
    for day in range(DAYS, -1, -1):
        rng = random.Random(f"{seed}:{day}")
        date = (now - timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        count = int(rng.gauss(380 if date.weekday() < 5 else 240, 25))
        for _ in range(count):
            at = date + timedelta(hours=rng.choices(range(24), hours)[0], minutes=rng.uniform(0, 60))
            visitor = str(uuid.UUID(int=rng.getrandbits(128)))
            if at < now:
                result.append((visitor, at))
    return result


# Where the demo's visitors come from and what they use: (weight, context) pairs, as the landing page derives them.
SOURCES = [(40, {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_sale",
                 "referrer_host": "www.google.com"}),
           (20, {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly_digest"}),
           (10, {"utm_source": "linkedin", "utm_medium": "social", "referrer_host": "www.linkedin.com"}),
           (10, {"referrer_host": "news.example.org"}),
           (20, {})]
DEVICES = [(45, {"device": "desktop", "browser": "Chrome", "os": "Windows"}),
           (10, {"device": "desktop", "browser": "Firefox", "os": "Linux"}),
           (25, {"device": "mobile", "browser": "Mobile Safari", "os": "iOS"}),
           (15, {"device": "mobile", "browser": "Chrome Mobile", "os": "Android"}),
           (5, {"device": "tablet", "browser": "Mobile Safari", "os": "iOS"})]
COUNTRIES = [(30, "US"), (20, "DE"), (15, "FR"), (15, "GB"), (20, "NL")]


def context_for(visitor: str) -> dict[str, str]:
    """The visitor's context, the same in every experiment they see."""
    rng = random.Random(visitor)

    def pick(choices):
        return rng.choices([c for _, c in choices], [w for w, _ in choices])[0]

    return {**pick(SOURCES), **pick(DEVICES), "country": pick(COUNTRIES), "path": "/"}


def events_for(demo: Demo, visitor: str, at: datetime, now: datetime) -> list[dict[str, Any]]:
    """The visitor's events in the experiment. What they do is drawn from a generator of their own, so it
    does not depend on how many visitors came before them (nor, through that, on the clock)."""
    start, end = now - timedelta(days=demo.days[1]), now - timedelta(days=demo.days[0])
    if demo.status == "draft" or not start <= at <= end:
        return []
    variant = assign_variant(visitor, [v["name"] for v in demo.variants], [v["weight"] for v in demo.variants],
                             1.0, demo.key)
    rng = random.Random(f"{demo.key}:{visitor}")
    if variant is None or rng.random() < demo.lose.get(variant, 0.0):
        return []

    def event(kind: str, seconds: float) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid5(EVENT_NAMESPACE, f"{demo.key}:{visitor}:{kind}")),
                "visitor_id": visitor, "experiment": demo.key, "variant": variant, "event_type": kind,
                "timestamp": (at + timedelta(seconds=seconds)).isoformat()}

    rows = [{**event("page_view", 0), "context": context_for(visitor)}]
    if rng.random() < demo.click[variant]:
        rows.append(event("cta_click", rng.uniform(5, 90)))
        if rng.random() < demo.signup[variant]:
            rows.append(event("form_submit", rng.uniform(95, 400)))
    return [r for r in rows if r["timestamp"] <= now.isoformat()]


def send(metrics_url: str, ingest_key: str | None, events: list[dict[str, Any]]) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {ingest_key}"} if ingest_key else {}
    accepted = duplicates = 0
    for start in range(0, len(events), BATCH):
        response = requests.post(f"{metrics_url}/events", json=events[start:start + BATCH], headers=headers,
                                 timeout=60)
        response.raise_for_status()
        accepted += response.json()["accepted"]
        duplicates += response.json().get("duplicates", 0)
    return accepted, duplicates


def traffic(now: datetime, seed: int = 17) -> list[dict[str, Any]]:
    """The events of the DAYS days before `now`, oldest first."""
    events = [e for visitor, at in visits(seed, now) for demo in EXPERIMENTS
              for e in events_for(demo, visitor, at, now)]
    return sorted(events, key=lambda e: e["timestamp"])


def run(ab_url: str, metrics_url: str, admin_token: str, ingest_key: str | None, seed: int = 17,
        now: datetime | None = None) -> int:
    """Define the experiments and send the traffic of the DAYS days before `now` (default: the current
    time); the number of events newly stored."""
    content = supports_content(ab_url, admin_token)
    for demo in EXPERIMENTS:
        define(ab_url, admin_token, demo, content)
    events = traffic(now or datetime.now(UTC), seed)
    accepted, duplicates = send(metrics_url, ingest_key, events)
    print(f"demo: {len(EXPERIMENTS)} experiments, {len(events):,} events sent ({accepted:,} new, "
          f"{duplicates:,} already there)")
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ab-url", default=os.environ.get("AB_SERVICE_URL", "http://127.0.0.1:5002"))
    parser.add_argument("--metrics-url", default=os.environ.get("METRICS_SERVICE_URL", "http://127.0.0.1:5001"))
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "data"), type=Path)
    args = parser.parse_args()
    token = read_secret(args.data_dir, "admin_token", "ADMIN_TOKEN")
    if not token:
        sys.exit(f"No admin token: start the stack with `make run` first (it writes {args.data_dir}/admin_token).")
    try:
        requests.get(f"{args.ab_url}/health", timeout=3).raise_for_status()
        requests.get(f"{args.metrics_url}/health", timeout=3).raise_for_status()
    except requests.RequestException:
        sys.exit(f"The stack is not answering at {args.ab_url} and {args.metrics_url}: run `make run` first, "
                 "then `make demo` in another terminal.")
    run(args.ab_url, args.metrics_url, token, read_secret(args.data_dir, "ingest_key", "INGEST_KEY"))


if __name__ == "__main__":
    main()
