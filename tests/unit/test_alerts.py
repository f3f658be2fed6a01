"""The pure parts of alerts and schedules: signatures, retry delays, what a readout raises, and the rules
of an experiment's schedule."""
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from ab_service.alerts import guardrail_alerts, readout_alerts, retry_delay_seconds
from ab_service.schemas import schedule_problems
from core.webhooks import sign, verify

SECRET = "whsec_test_secret_value"
BODY = b'{"id":"1","event":"srm.detected"}'


def test_the_signature_is_the_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signed_body_only_from_the_right_secret_and_recent_time():
    header = sign(SECRET, BODY, 1700000000)
    assert verify(SECRET, BODY, header, now=1700000100)
    assert not verify("another secret", BODY, header, now=1700000100)
    assert not verify(SECRET, BODY + b" ", header, now=1700000100)
    assert not verify(SECRET, BODY, header, now=1700000000 + 301)  # replayed later
    assert not verify(SECRET, BODY, "t=abc,v1=00", now=1700000000)
    assert not verify(SECRET, BODY, "", now=1700000000)


def test_retries_wait_twice_as_long_each_time_up_to_the_cap():
    assert [retry_delay_seconds(n, cap=60) for n in range(1, 6)] == [5, 10, 20, 40, 60]


RESULTS = {"metric": "conversion", "srm": {"p_value": 0.0001, "mismatch": True, "expected_weights": {"A": 0.5}},
           "verdict": "B converts better", "verdict_code": "significant", "verdict_variant": "B"}


def test_a_readout_raises_srm_and_significance_once_per_run_and_variant():
    alerts = readout_alerts("hero", 1000, RESULTS)
    assert [(a.event, a.condition) for a in alerts] == [
        ("srm.detected", "srm.detected:hero:1000"),
        ("significance.reached", "significance.reached:hero:1000:conversion:B")]
    assert alerts[1].data["variant"] == "B"
    quiet = {**RESULTS, "srm": {"p_value": 0.5, "mismatch": False}, "verdict_code": "no_difference"}
    assert readout_alerts("hero", 1000, quiet) == []
    assert readout_alerts("hero", 1000, {}) == []  # no data yet


@pytest.mark.parametrize("summary", [
    {"guardrails": [{"metric": "bounce", "breached": True}, {"metric": "errors", "breached": False}]},
    {"metrics": [{"metric": "bounce", "guardrail": {"breached": True}}, {"metric": "signup"}]},
])
def test_each_breached_guardrail_of_the_summary_raises_an_alert(summary):
    [alert] = guardrail_alerts("hero", 1000, summary)
    assert (alert.event, alert.condition, alert.data["metric"]) == (
        "guardrail.breached", "guardrail.breached:hero:1000:bounce", "bounce")
    assert guardrail_alerts("hero", 1000, {}) == []


NOW = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize("status, start, stop, new, fields", [
    ("draft", NOW + HOUR, NOW + 2 * HOUR, {"start_at", "stop_at"}, []),
    ("draft", NOW - HOUR, None, {"start_at"}, ["start_at"]),
    ("draft", None, NOW, {"stop_at"}, ["stop_at"]),
    ("draft", NOW + 2 * HOUR, NOW + HOUR, {"stop_at"}, ["stop_at"]),
    ("running", NOW + HOUR, None, {"start_at"}, ["start_at"]),
    ("running", None, NOW + HOUR, {"stop_at"}, []),
    ("draft", NOW - HOUR, NOW + HOUR, {"stop_at"}, []),  # a start already set is not checked again
])
def test_schedule_rules(status, start, stop, new, fields):
    assert [p["field"] for p in schedule_problems(status, start, stop, new, NOW)] == fields


def test_the_readme_verification_snippet_accepts_what_the_sender_signs():
    import re
    import time

    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    [snippet] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify" in block]
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - the README's own example
    now = int(time.time())
    assert namespace["verify"](SECRET, BODY, sign(SECRET, BODY, now))
    assert not namespace["verify"](SECRET, BODY + b"x", sign(SECRET, BODY, now))
    assert not namespace["verify"](SECRET, BODY, sign(SECRET, BODY, now - 600))
