import pytest

from core.bucketing import (
    assign_variant,
    bucket_ranges,
    choose_variation,
    fnv1a32,
    gb_hash,
)

# Published in GrowthBook's SDK test cases (packages/sdk-js/test/cases.json): seed, value, version, hash.
HASH_VECTORS = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
]

BUCKET_RANGE_VECTORS = [
    ((2, 1, None), [(0, 0.5), (0.5, 1)]),
    ((2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ((2, 0, None), [(0, 0), (0.5, 0.5)]),
    ((4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ((2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ((3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ((3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ((2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ((2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ((2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ((2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    ((4, 1, [0.4, 0.4, 0.2]), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
]


def test_fnv1a32_reference_values():
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_fnv1a32_uses_utf16_code_units():
    # JavaScript sees "é" as one code unit 0xE9 and "😀" as two surrogates.
    h = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a32("\U0001F600") == h
    assert fnv1a32("é") == ((0x811C9DC5 ^ 0xE9) * 0x01000193) & 0xFFFFFFFF


@pytest.mark.parametrize("seed,value,version,expected", HASH_VECTORS)
def test_hash_matches_published_vectors(seed, value, version, expected):
    assert gb_hash(seed, value, version) == pytest.approx(expected, abs=1e-9)


def test_unknown_hash_version_is_none():
    assert gb_hash("seed", "a", 99) is None


@pytest.mark.parametrize("args,expected", BUCKET_RANGE_VECTORS)
def test_bucket_ranges_match_published_vectors(args, expected):
    got = bucket_ranges(*args)
    assert len(got) == len(expected)
    for (start, end), (exp_start, exp_end) in zip(got, expected, strict=True):
        assert start == pytest.approx(exp_start)
        assert end == pytest.approx(exp_end)


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

