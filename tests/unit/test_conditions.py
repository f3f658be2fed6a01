"""Conditions are GrowthBook's, evaluated by the official package; the checks refuse what it would
silently never match."""
import pytest
from growthbook.core import evalCondition

from core.conditions import MAX_CONDITION_BYTES, condition_problems


@pytest.mark.parametrize("condition", [
    {},
    {"utm_source": "google"},
    {"device": {"$in": ["mobile", "tablet"]}, "returning": True},
    {"$or": [{"utm_source": {"$regex": "^goo"}}, {"referrer_host": {"$exists": True}}]},
    {"$not": {"browser": {"$ini": ["chrome"]}}},
    {"$and": [{"path": {"$ne": "/pricing"}}, {"$nor": [{"os": "ios"}]}]},
    {"utm_campaign": {"$not": {"$regexi": "spring"}}, "id": {"$type": "string"}},
    {"browser": {"$vgte": "1.2.0", "$lt": 5}},
])
def test_growthbook_conditions_over_known_attributes_pass(condition):
    assert condition_problems(condition) == []
    evalCondition({"id": "v1", "device": "mobile"}, condition)  # and the package evaluates them


@pytest.mark.parametrize("condition,where", [
    ([{"utm_source": "google"}], "must be a JSON object"),
    ({"utm_source": {"$inn": ["google"]}}, "utm_source.$inn: unknown operator"),
    ({"$xor": [{"device": "mobile"}]}, "$xor: unknown operator"),
    ({"country": "fr"}, "country: unknown attribute"),
    ({"$or": {"device": "mobile"}}, "$or: must be a list of conditions"),
    ({"$or": [{"device": "mobile"}, "tablet"]}, "$or.1: must be a condition object"),
    ({"device": {"$in": "mobile"}}, "device.$in: must be a list"),
    ({"utm_source": {"$regex": "(unclosed"}}, "utm_source.$regex: not a regular expression"),
    ({"returning": {"$exists": "yes"}}, "returning.$exists: must be true or false"),
    ({"device": {"$type": "str"}}, "device.$type: must be one of"),
    ({"device": {"$in": ["mobile"], "os": "ios"}}, "device: mixes operators and plain keys"),
    ({"utm_source": {"$inGroup": "paid"}}, "utm_source.$inGroup: unknown operator"),
    ({"$savedGroup": {"id": "paid"}}, "$savedGroup: unknown operator"),
    ({"path": {"$gt": True}}, "path.$gt: must be a string or a number"),
    ({"$not": {"path": {"$not": {"$bad": 1}}}}, "$not.path.$not.$bad: unknown operator"),
])
def test_problems_name_where_they_are(condition, where):
    problems = condition_problems(condition)
    assert any(p.startswith(where) for p in problems), problems


def test_size_is_limited():
    big = {"utm_source": {"$in": [f"source-{i}" for i in range(200)]}}
    [problem] = condition_problems(big)
    assert problem.startswith(f"must be at most {MAX_CONDITION_BYTES} bytes")


@pytest.mark.parametrize("pattern,why", [
    (r"(a+)+$", "no quantifier inside a repeated group"),
    (r"^(\w+\s?)*$", "no quantifier inside a repeated group"),
    (r"(x+x+)+y", "no quantifier inside a repeated group"),
    (r"(a|aa)*b", "no alternation inside a repeated group"),
    (r"(?:a|a?)+", "no alternation inside a repeated group"),
    (r"(\w+)-\1", "no backreferences"),
    (r"a*a*a*a*b", "at most 3 repeating quantifiers"),
    ("a" * 300, "a regular expression of at most 256 characters"),
])
def test_regular_expressions_that_can_backtrack_for_ever_are_refused(pattern, why):
    """Conditions run on every page view in Python's backtracking engine: a pattern whose matching time
    explodes on a 64-character attribute would hold a worker, so it is refused when saved."""
    [problem] = condition_problems({"utm_campaign": {"$regex": pattern}})
    assert problem.startswith("utm_campaign.$regex: " + why), problem


@pytest.mark.parametrize("pattern", [
    r"^(google|bing)$", r"^/pricing(/.*)?$", r"^spring-[a-z]{2,10}$", r"(?:ab)+c", r"^(?!test)", r"news.*letter",
])
def test_ordinary_regular_expressions_pass(pattern):
    assert condition_problems({"utm_campaign": {"$regex": pattern}}) == []
