"""Deterministic variant assignment, following GrowthBook's public SDK spec.

Pure functions, no I/O: any GrowthBook SDK given the same seed, visitor id, weights
and coverage puts a visitor in the same variant.
"""
from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF

BucketRange = tuple[float, float]


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the string's UTF-16 code units, as JavaScript's charCodeAt sees them."""
    h = FNV_OFFSET
    if text.isascii():  # each code unit is the character's byte (visitor ids, keys): no UTF-16 pairs to join
        for unit in text.encode():
            h = ((h ^ unit) * FNV_PRIME) & _MASK
        return h
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str, version: int = 2) -> float | None:
    """Map (seed, value) to a number in [0, 1); None for an unknown hash version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(count: int) -> list[float]:
    return [1.0 / count] * count if count > 0 else []


def bucket_ranges(
    count: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """One [start, end) range per variant: each starts at the cumulative weight, spans coverage*weight."""
    coverage = min(max(coverage, 0.0), 1.0)
    if weights is None or len(weights) != count or not 0.99 <= sum(weights) <= 1.01:
        weights = equal_weights(count)
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bucket: BucketRange) -> bool:
    return bucket[0] <= n < bucket[1]


def choose_variation(n: float, ranges: Sequence[BucketRange]) -> int:
    """Index of the range that holds n, or -1 when n falls outside every range (not covered)."""
    for index, bucket in enumerate(ranges):
        if in_range(n, bucket):
            return index
    return -1


def assign_variant(
    visitor_id: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
    coverage: float = 1.0,
    seed: str = "",
) -> str | None:
    """The variant name a fresh visitor gets, or None when the visitor is outside coverage."""
    n = gb_hash(seed, visitor_id, 2)
    index = choose_variation(n, bucket_ranges(len(variants), coverage, weights))
    return variants[index] if index >= 0 else None

