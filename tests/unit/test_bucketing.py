"""Hashing and bucketing checked against GrowthBook's own Python SDK over generated seeds, ids,
weights and coverage: any GrowthBook SDK puts a visitor where this code does."""
from growthbook.core import chooseVariation, gbhash, getBucketRanges
from growthbook.core import fnv1a32 as gb_fnv1a32
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.bucketing import assign_variant, bucket_ranges, choose_variation, fnv1a32, gb_hash

PROPERTIES = settings(max_examples=400, deadline=None, derandomize=True)
TEXT = st.text(max_size=40)


@st.composite
def weight_vectors(draw, count: int):
    """None, weights that sum to 1, or any non-negative vector (of any length: these fall back to equal)."""
    kind = draw(st.sampled_from(["none", "valid", "any"]))
    if kind == "none":
        return None
    length = count if kind == "valid" or draw(st.booleans()) else draw(st.integers(0, 11))
    raw = draw(st.lists(st.floats(0, 1), min_size=length, max_size=length))
    if kind == "valid" and sum(raw) > 0:
        return [w / sum(raw) for w in raw]
    return raw


@PROPERTIES
@given(text=st.text(max_size=60))
@example(text="\U0001F600 é")  # a surrogate pair and a Latin-1 letter: UTF-16 code units, as in JavaScript
def test_fnv1a32_matches_growthbook(text):
    assert fnv1a32(text) == gb_fnv1a32(text)


@PROPERTIES
@given(seed=TEXT, value=TEXT, version=st.sampled_from([1, 2, 0, 3]))
# inputs of GrowthBook's published SDK cases
@example(seed="", value='___)((*":&', version=1)
@example(seed="()**(%$##$%#$#", value='___)((*":&', version=2)
@example(seed="90850943850283058242805", value="123", version=2)
def test_hash_matches_growthbook(seed, value, version):
    assert gb_hash(seed, value, version) == gbhash(seed, value, version)


@PROPERTIES
@given(data=st.data(), count=st.integers(1, 10), coverage=st.floats(-0.5, 1.5))
def test_bucket_ranges_match_growthbook(data, count, coverage):
    weights = data.draw(weight_vectors(count))
    assert bucket_ranges(count, coverage, weights) == getBucketRanges(count, coverage, weights)


@PROPERTIES
@given(data=st.data(), count=st.integers(1, 10), coverage=st.floats(0, 1), n=st.floats(0, 1, exclude_max=True))
def test_choose_variation_matches_growthbook(data, count, coverage, n):
    ranges = bucket_ranges(count, coverage, data.draw(weight_vectors(count)))
    assert choose_variation(n, ranges) == chooseVariation(n, ranges)


def test_choose_variation_boundaries():
    ranges = [(0, 0.25), (0.5, 0.75)]
    assert choose_variation(0.0, ranges) == 0
    assert choose_variation(0.2499, ranges) == 0
    assert choose_variation(0.25, ranges) == -1
    assert choose_variation(0.5, ranges) == 1
    assert choose_variation(0.75, ranges) == -1


def test_assign_variant_is_deterministic_and_balanced():
    ids = [f"visitor-{i}" for i in range(4000)]
    first = [assign_variant(v, ["A", "B"], seed="landing") for v in ids]
    assert first == [assign_variant(v, ["A", "B"], seed="landing") for v in ids]
    share_a = first.count("A") / len(first)
    assert 0.46 < share_a < 0.54


def test_assign_variant_respects_coverage_and_weights():
    ids = [f"v{i}" for i in range(4000)]
    got = [assign_variant(v, ["A", "B"], weights=[0.2, 0.8], coverage=0.5, seed="x") for v in ids]
    assert 0.45 < got.count(None) / len(got) < 0.55
    covered = [g for g in got if g]
    assert 0.15 < covered.count("A") / len(covered) < 0.25
