"""Bad input never poisons ab_service's state: every field of every write is validated, null included
(400 naming the field); no sequence of accepted writes, and no stored row, makes a read answer 5xx."""
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from ab_service.schemas import ExperimentIn, ExperimentPatch, FlagIn, FlagPatch
from ab_service.store import audit_log, experiments, flags

HERO = {"key": "hero", "description": "Hero test", "variants": [{"name": "A", "weight": 0.5},
                                                                 {"name": "B", "weight": 0.5}],
        "coverage": 1.0, "seed": "hero-seed", "status": "draft"}
FLAG = {"key": "banner", "type": "string", "value": "Hello", "off_value": "Bye", "rollout": 0.5,
        "description": "Banner text"}
EXPERIMENT_KEYS = ["landing", "hero", "other"]
FLAG_KEYS = ["cta_text", "show_testimonials", "accent_color", "promo_discount_percent", "hero_headline", "banner"]


def reads(client, admin_headers) -> dict[str, object]:
    """Every read route of ab_service (for every key the tests use): path -> response."""
    paths = ["/experiments", "/flags", "/config", "/config?visitor_id=v1", "/audit?limit=1000"]
    paths += [f"/experiments/{key}" for key in EXPERIMENT_KEYS] + [f"/flags/{key}" for key in FLAG_KEYS]
    paths += [f"/assign?visitor_id=v{i}&experiment={key}" for key in EXPERIMENT_KEYS for i in range(3)]
    return {path: client.get(path, headers=admin_headers) for path in paths}


def assert_all_readable(client, admin_headers):
    """No read answers 5xx, and every stored record is readable (no 409, nothing listed as unreadable)."""
    for path, response in reads(client, admin_headers).items():
        assert response.status_code in (200, 404), (path, response.status_code, response.get_json())
        body = response.get_json()
        assert isinstance(body, dict) and "unreadable" not in body, (path, body)
        assert "X-Unreadable-Flags" not in response.headers, path


def names_field(answer: dict, field: str) -> bool:
    """Whether an error answer names field (or a part of it, such as variants.0.weight for variants)."""
    return any(str(e["field"]).split(".")[0] == field for e in answer["errors"])


def refusing_null(model) -> list[str]:
    """The fields of a body where null is refused: all but those where a PATCH removes a setting with it."""
    return [field for field in model.model_fields if field not in model.NULL_REMOVES]


def null_cases():
    """(method, path, body, field) with null in each field of each body, nested variant fields included."""
    good_patch = {"description": "x", "variants": HERO["variants"], "coverage": 0.5, "seed": "s", "status": "draft"}
    good_flag_patch = {"value": "Hi", "off_value": "Ho", "rollout": 0.3, "description": "d"}
    cases = [("post", "/experiments", {**HERO, field: None}, field) for field in refusing_null(ExperimentIn)]
    cases += [("patch", "/experiments/hero", {field: None}, field) for field in refusing_null(ExperimentPatch)]
    cases += [("patch", "/experiments/hero", {**good_patch, field: None}, field)
              for field in refusing_null(ExperimentPatch)]
    cases += [("post", "/experiments", {**HERO, "variants": [{"name": "A", "weight": None}, HERO["variants"][1]]},
               "variants.0.weight"),
              ("patch", "/experiments/hero", {"variants": [HERO["variants"][0], {"name": None, "weight": 0.5}]},
               "variants.1.name")]
    cases += [("post", "/flags", {**FLAG, "key": "other", field: None}, field) for field in refusing_null(FlagIn)]
    cases += [("patch", "/flags/banner", {field: None}, field) for field in refusing_null(FlagPatch)]
    cases += [("patch", "/flags/banner", {**good_flag_patch, field: None}, field) for field in refusing_null(FlagPatch)]
    cases += [("post", "/config", {key: None}, key) for key in FLAG_KEYS]
    cases += [("post", "/config", {"cta_text": "Go", key: None}, key) for key in FLAG_KEYS if key != "cta_text"]
    return cases


@pytest.fixture
def seeded(ab_client, admin_headers):
    assert ab_client.post("/experiments", json=HERO, headers=admin_headers).status_code == 201
    assert ab_client.post("/flags", json=FLAG, headers=admin_headers).status_code == 201
    return ab_client


@pytest.mark.parametrize("method,path,body,field", null_cases(),
                         ids=[f"{m} {p} {f}" for m, p, _, f in null_cases()])
def test_null_is_refused_naming_the_field(seeded, admin_headers, method, path, body, field):
    before = reads(seeded, admin_headers)
    response = getattr(seeded, method)(path, json=body, headers=admin_headers)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert field in [e["field"] for e in answer["errors"]] and field in answer["message"]
    after = reads(seeded, admin_headers)
    assert {p: r.get_json() for p, r in after.items() if p != "/audit?limit=1000"} == \
           {p: r.get_json() for p, r in before.items() if p != "/audit?limit=1000"}
    assert_all_readable(seeded, admin_headers)


def test_patch_with_null_variants_leaves_the_experiment_usable(ab_client, admin_headers):
    """The reported case: {"variants": null} was stored, and every later /assign, list and PATCH answered 500."""
    response = ab_client.patch("/experiments/landing", json={"variants": None}, headers=admin_headers)
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "variants", "message": "must not be null"}]
    assert ab_client.get("/assign?visitor_id=v1").status_code == 200
    assert ab_client.get("/experiments").status_code == 200
    repaired = ab_client.patch("/experiments/landing", json={"coverage": 0.5}, headers=admin_headers)
    assert repaired.status_code == 200 and repaired.get_json()["coverage"] == 0.5


def test_omitted_fields_take_their_defaults(ab_client, admin_headers):
    created = ab_client.post("/experiments", json={"key": "bare", "variants": HERO["variants"]},
                             headers=admin_headers).get_json()
    assert (created["seed"], created["status"], created["coverage"], created["description"]) == \
           (None, "draft", 1.0, "")
    flag = ab_client.post("/flags", json={"key": "beta", "type": "boolean", "value": True},
                          headers=admin_headers).get_json()
    assert (flag["off_value"], flag["rollout"], flag["description"]) == (False, 1.0, "")


# Rows that the API can no longer write, put straight into the database (by hand, or by an older
# version): (table, key, column changes, the field named as unreadable).
BAD_ROWS = [
    (experiments, "hero", {"variants": None}, "variants"),
    (experiments, "hero", {"variants": {"A": 0.5}}, "variants"),
    (experiments, "hero", {"variants": [1, 2]}, "variants"),
    (experiments, "hero", {"variants": [{"name": "A"}, {"name": "B"}]}, "variants"),
    (experiments, "hero", {"variants": [{"name": "A", "weight": 0.9}, {"name": "B", "weight": 0.9}]}, "variants"),
    (experiments, "hero", {"coverage": float("inf")}, "coverage"),
    (experiments, "hero", {"coverage": 7.0}, "coverage"),
    (experiments, "hero", {"status": "paused"}, "status"),
    (experiments, "hero", {"seed": ""}, "seed"),
    (flags, "banner", {"value": "not json"}, "value"),
    (flags, "banner", {"value": "null"}, "value"),
    (flags, "banner", {"off_value": "[1, 2]"}, "off_value"),
    (flags, "banner", {"value": json.dumps("x" * 500)}, "value"),
    (flags, "banner", {"rollout": -1.0}, "rollout"),
    (flags, "banner", {"type": "json"}, "type"),
]


def write_row(app, table, key, changes):
    with app.extensions["ab_store"].engine.begin() as conn:
        conn.execute(update(table).where(table.c.key == key).values(**changes))


@pytest.mark.parametrize("table,key,changes,field", BAD_ROWS, ids=[f"{t.name}-{f}-{i}" for i, (t, _, _, f)
                                                                   in enumerate(BAD_ROWS)])
def test_a_stored_row_that_does_not_fit_never_makes_a_read_fail(ab_app, seeded, admin_headers, table, key,
                                                                changes, field):
    write_row(ab_app, table, key, changes)
    entity = "experiments" if table is experiments else "flags"
    for path, response in reads(seeded, admin_headers).items():
        assert response.status_code < 500, (path, response.get_json())
    # The record itself: 409 naming what is wrong; the list: every other record, and this one named.
    single = seeded.get(f"/{entity}/{key}")
    assert single.status_code == 409
    assert single.get_json()["error"] == "unreadable_record"
    assert names_field(single.get_json(), field)
    listed = seeded.get(f"/{entity}").get_json()
    assert key not in [item["key"] for item in listed[entity]] and len(listed[entity]) >= 1
    assert [u["key"] for u in listed["unreadable"]] == [key]
    if table is experiments:
        assert seeded.get(f"/assign?visitor_id=v1&experiment={key}").status_code == 409
        assert seeded.get("/assign?visitor_id=v1").status_code == 200
    else:
        config = seeded.get("/config")
        assert config.status_code == 200 and key not in config.get_json() and "cta_text" in config.get_json()
        assert config.headers["X-Unreadable-Flags"] == key


REPAIRS = {
    "variants": {"variants": HERO["variants"]}, "coverage": {"coverage": 0.5}, "status": {"status": "running"},
    "seed": {"seed": "new-seed"}, "value": {"value": "Repaired"}, "off_value": {"off_value": "Repaired"},
    "rollout": {"rollout": 1.0},
}


@pytest.mark.parametrize("table,key,changes,field", [r for r in BAD_ROWS if r[3] in REPAIRS],
                         ids=[f"{t.name}-{f}" for t, _, _, f in BAD_ROWS if f in REPAIRS])
def test_a_patch_repairs_a_row_that_does_not_fit(ab_app, seeded, admin_headers, table, key, changes, field):
    write_row(ab_app, table, key, changes)
    entity = "experiments" if table is experiments else "flags"
    unrelated = {"description": "only the description"}
    refused = seeded.patch(f"/{entity}/{key}", json=unrelated, headers=admin_headers)
    assert refused.status_code == 400 and names_field(refused.get_json(), field)
    repaired = seeded.patch(f"/{entity}/{key}", json=REPAIRS[field], headers=admin_headers)
    assert repaired.status_code == 200, repaired.get_json()
    assert_all_readable(seeded, admin_headers)
    audit = seeded.get("/audit", headers=admin_headers).get_json()["entries"][0]
    assert audit["key"] == key and audit["new"] == seeded.get(f"/{entity}/{key}").get_json()


def test_an_audit_entry_that_is_not_json_is_shown_as_stored(ab_app, ab_client, admin_headers):
    with ab_app.extensions["ab_store"].engine.begin() as conn:
        conn.execute(insert(audit_log).values(at=1, actor="admin", entity="flag", key="cta_text", action="update",
                                              old="{broken", new="also broken"))
    entry = ab_client.get("/audit", headers=admin_headers).get_json()["entries"][0]
    assert (entry["old"], entry["new"]) == ("{broken", "also broken")


# Property: any sequence of writes, plausible ones mixed with poisoned ones (a field set to null or to any
# JSON at all: wrong types, NaN, nesting), leaves every read answering 2xx/4xx and every record readable.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
VARIANT_SETS = [[("A", 0.5), ("B", 0.5)], [("A", 0.2), ("B", 0.8)], [("A", 0.2), ("B", 0.3), ("C", 0.5)],
                [("B", 0.5), ("C", 0.5)], [("A", 1.0), ("B", 0.0)]]
FLAG_VALUES = {"boolean": [True, False], "string": ["Go", "Hello there"], "number": [0, 2.5, 20],
               "color": ["#00ff00", "#123abc"]}
ALL_VALUES = [v for values in FLAG_VALUES.values() for v in values]
FIELDS = {"/experiments": list(ExperimentIn.model_fields), "/flags": list(FlagIn.model_fields)}


@st.composite
def plausible_write(draw) -> tuple[str, str, dict]:
    """A write that may well be accepted."""
    pick = lambda options: draw(st.sampled_from(options))  # noqa: E731
    some = lambda body: {k: v for k, v in body.items() if draw(st.booleans())}  # noqa: E731
    variants = [{"name": n, "weight": w} for n, w in pick(VARIANT_SETS)]
    experiment = {"description": draw(st.text(max_size=10)), "variants": variants, "coverage": pick([0.0, 0.5, 1.0]),
                  "seed": pick(["s1", "s2"]), "status": pick(["draft", "running", "stopped"])}
    kind = pick(list(FLAG_VALUES))
    flag = {"value": pick(FLAG_VALUES[kind]), "off_value": pick(FLAG_VALUES[kind]), "rollout": pick([0.0, 0.5, 1.0]),
            "description": draw(st.text(max_size=10))}
    return pick([
        ("post", "/experiments", {"key": pick(EXPERIMENT_KEYS), "variants": variants, **some(experiment)}),
        ("patch", f"/experiments/{pick(EXPERIMENT_KEYS)}", some(experiment)),
        ("post", "/flags", {"key": pick(FLAG_KEYS), "type": kind, "value": flag["value"], **some(flag)}),
        ("patch", f"/flags/{pick(FLAG_KEYS)}", {"value": pick(ALL_VALUES), **some(flag)}),
        ("post", "/config", {pick(FLAG_KEYS): pick(ALL_VALUES) for _ in range(draw(st.integers(1, 3)))}),
    ])


@st.composite
def writes(draw) -> tuple[str, str, dict]:
    """A plausible write, or one with a field (or a variant's field, or the whole body) set to any JSON."""
    method, path, body = draw(plausible_write())
    where = draw(st.sampled_from(["none", "field", "variant", "body"]))
    if where == "field":
        names = list(body) + FIELDS.get(path, [])
        body = {**body, draw(st.sampled_from(names or ["x"])): draw(json_values)}
    elif where == "variant" and body.get("variants"):
        variants = [dict(v) for v in body["variants"]]
        variants[draw(st.integers(0, len(variants) - 1))][draw(st.sampled_from(["name", "weight"]))] = \
            draw(json_values)
        body = {**body, "variants": variants}
    elif where == "body":
        body = draw(json_values)
    return method, path, body


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=st.lists(writes(), min_size=1, max_size=6))
def test_no_sequence_of_writes_leaves_a_read_failing(ab_client, admin_headers, sequence):
    for method, path, body in sequence:
        response = getattr(ab_client, method)(path, json=body, headers=admin_headers)
        assert response.status_code in (200, 201, 400, 404, 409), (method, path, body, response.get_json())
        assert response.is_json
        event(f"{method} {path.split('/')[1]}: {response.status_code}")
    assert_all_readable(ab_client, admin_headers)
