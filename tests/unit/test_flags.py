import pytest

from core.flags import DEFAULT_FLAGS, allowed_problem, in_rollout, resolve, resolve_all, value_problem


@pytest.mark.parametrize("kind,value,ok", [
    ("boolean", True, True), ("boolean", "true", False), ("boolean", 1, False),
    ("number", 3, True), ("number", 2.5, True), ("number", True, False), ("number", "3", False),
    ("number", float("nan"), False), ("number", 1e20, False),
    ("string", "Hi", True), ("string", "", False), ("string", "x" * 201, False), ("string", 5, False),
    ("color", "#1a2B3c", True), ("color", "red", False), ("color", "#fff", False),
    ("color", "#123456;background:url(x)", False), ("json", {}, False),
])
def test_value_problem_by_type(kind, value, ok):
    assert (value_problem(kind, value) is None) is ok


def test_rollout_share_and_monotonicity():
    ids = [f"visitor-{i}" for i in range(5000)]
    at_20 = {v for v in ids if in_rollout("new_hero", v, 0.2)}
    at_50 = {v for v in ids if in_rollout("new_hero", v, 0.5)}
    assert 0.17 < len(at_20) / len(ids) < 0.23
    assert 0.47 < len(at_50) / len(ids) < 0.53
    assert at_20 <= at_50
    assert all(in_rollout("new_hero", v, 1.0) for v in ids[:50])
    assert not any(in_rollout("new_hero", v, 0.0) for v in ids[:50])


def test_rollout_depends_on_the_flag_key():
    ids = [f"v{i}" for i in range(2000)]
    a = {v for v in ids if in_rollout("flag_a", v, 0.5)}
    b = {v for v in ids if in_rollout("flag_b", v, 0.5)}
    assert a != b


def test_resolve_inside_and_outside_rollout():
    flag = {"key": "cta_text", "value": "New", "off_value": "Old", "rollout": 0.5}
    values = {resolve(flag, f"v{i}") for i in range(200)}
    assert values == {"New", "Old"}
    assert resolve({**flag, "rollout": 1.0}, None) == "New"
    assert resolve(flag, None) == "Old"
    assert resolve_all([flag, {"key": "x", "value": 1, "off_value": 0, "rollout": 1.0}], "v1")["x"] == 1


def test_allowed_values_restrict_a_string_flag():
    assert value_problem("string", "split", ["centered", "split"]) is None
    assert value_problem("string", "grid", ["centered", "split"]) == "must be one of 'centered', 'split'"
    assert value_problem("string", 5, ["centered"]) == "must be a string"


@pytest.mark.parametrize("kind,allowed,problem", [
    ("string", ["centered", "split"], None),
    ("boolean", [True], "only string flags have allowed values"),
    ("string", [], "must list 1 to 20 values"),
    ("string", ["a", "a"], "must not repeat a value"),
    ("string", ["a", ""], "'' must not be empty"),
])
def test_allowed_lists_are_checked(kind, allowed, problem):
    assert allowed_problem(kind, allowed) == problem


def test_every_default_flag_fits_its_type_and_allowed_values():
    for flag in DEFAULT_FLAGS:
        for value in (flag["value"], flag["off_value"]):
            assert value_problem(flag["type"], value, flag["allowed"]) is None, flag
    assert {flag["key"] for flag in DEFAULT_FLAGS} == {
        "hero_headline", "hero_lede", "cta_text", "accent_color", "layout", "show_testimonials",
        "show_promo_section", "promo_discount_percent", "enable_signup_form"}
