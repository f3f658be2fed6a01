"""Whether to ship: the primary metric's verdict, held back by any guardrail significantly worse (pure).

The primary metric must show a significant improvement for its direction (by the always-valid
p-value, or the group-sequential test when a plan is saved: each readout names its method), and for
the variant that wins it, no guardrail metric may be significantly worse by the same test. The first
guardrail (in the order given) that is, blocks the ship and is named.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from metrics_service.schemas import RecommendationCode, Results
from metrics_service.statistics import VerdictCode


class Decision(NamedTuple):
    code: RecommendationCode
    variant: str | None
    blocking_guardrail: str | None


def significantly_worse(results: Results, variant: str) -> bool:
    """The variant moved the metric the wrong way for its direction, significantly."""
    return any(v.variant == variant and v.significant and v.better is False for v in results.variants)


def recommend(primary: Results, guardrails: Sequence[Results]) -> Decision:
    code = primary.verdict_code
    if code is None:
        return Decision(RecommendationCode.NO_DATA, None, None)
    if code == VerdictCode.SAMPLE_RATIO_MISMATCH:
        return Decision(RecommendationCode.SAMPLE_RATIO_MISMATCH, None, None)
    if code == VerdictCode.NOT_ENOUGH_DATA:
        return Decision(RecommendationCode.KEEP_RUNNING, None, None)
    winner = next((v for v in primary.variants if v.variant == primary.verdict_variant), None)
    if code != VerdictCode.SIGNIFICANT or winner is None or not winner.better:
        return Decision(RecommendationCode.NO_WINNER, None, None)
    for guardrail in guardrails:
        if significantly_worse(guardrail, winner.variant):
            return Decision(RecommendationCode.GUARDRAIL, winner.variant, guardrail.metric)
    return Decision(RecommendationCode.SHIP, winner.variant, None)
