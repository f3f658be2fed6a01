"""Experiments as content: overrides, namespaces and conditions through the API, on both backends;
conflicts between running experiments; allowed values of flags."""
import pytest

from core.evaluation import evaluate

TEST = {
    "key": "hero_test",
    "description": "Three calls to action",
    "variants": [{"name": "A", "weight": 0.4, "overrides": {}},
                 {"name": "B", "weight": 0.3, "overrides": {"cta_text": "Start free"}},
                 {"name": "C", "weight": 0.3, "overrides": {"cta_text": "Try it now", "accent_color": "#aa3300"}}],
    "coverage": 1.0,
    "status": "draft",
}


def create(client, headers, **changes):
    return client.post("/experiments", json={**TEST, **changes}, headers=headers)


def patch(client, headers, key="hero_test", **changes):
    return client.patch(f"/experiments/{key}", json=changes, headers=headers)


def errors(response) -> dict:
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


def test_overrides_are_stored_and_answered(ab_client, admin_headers):
    created = create(ab_client, admin_headers, namespace={"name": "hero", "start": 0, "end": 0.5},
                     condition={"utm_source": "google"})
    assert created.status_code == 201
    body = ab_client.get("/experiments/hero_test").get_json()
    assert body == created.get_json()
    assert body["variants"] == TEST["variants"]
    assert body["namespace"] == {"name": "hero", "start": 0.0, "end": 0.5}
    assert body["condition"] == {"utm_source": "google"}
    landing = ab_client.get("/experiments/landing").get_json()
    assert landing["variants"][0]["overrides"] == {}
    assert landing["variants"][1]["overrides"]["layout"] == "split"


def test_a_variant_may_leave_out_overrides(ab_client, admin_headers):
    plain = create(ab_client, admin_headers, variants=[{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}])
    assert plain.status_code == 201
    assert [v["overrides"] for v in plain.get_json()["variants"]] == [{}, {}]


@pytest.mark.parametrize("overrides,field,message", [
    ({"nope": "x"}, "variants.1.overrides.nope", "variant B: nope is not a flag"),
    ({"cta_text": 5}, "variants.1.overrides.cta_text", "variant B: cta_text must be a string"),
    ({"cta_text": ""}, "variants.1.overrides.cta_text", "variant B: cta_text must not be empty"),
    ({"cta_text": None}, "variants.1.overrides.cta_text", "variant B: cta_text must be a string"),
    ({"layout": "grid"}, "variants.1.overrides.layout", "variant B: layout must be one of 'centered', 'split'"),
    ({"accent_color": "red"}, "variants.1.overrides.accent_color", "variant B: accent_color must be a colour"),
    ({"show_testimonials": "yes"}, "variants.1.overrides.show_testimonials",
     "variant B: show_testimonials must be true or false"),
    ({"promo_discount_percent": "10"}, "variants.1.overrides.promo_discount_percent",
     "variant B: promo_discount_percent must be a number"),
    ({"bad key": "x"}, "variants.1.overrides.bad key.[key]", "String should match pattern"),
])
def test_each_override_must_fit_its_flag(ab_client, admin_headers, overrides, field, message):
    variants = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": overrides}]
    response = create(ab_client, admin_headers, variants=variants)
    assert response.status_code == 400
    assert errors(response)[field].startswith(message)
    assert ab_client.get("/experiments/hero_test").status_code == 404


@pytest.mark.parametrize("changes,field,message", [
    ({"key": "site"}, "key", "'site' is reserved"),
    ({"variants": [{"name": "A", "weight": 1.0}]}, "variants", "List should have at least 2 items"),
    ({"variants": [{"name": f"V{i}", "weight": 1 / 11} for i in range(11)]}, "variants",
     "List should have at most 10 items"),
    ({"variants": [{"name": "A", "weight": 0.5, "overrides": None}, {"name": "B", "weight": 0.5}]},
     "variants.0.overrides", "must not be null"),
    ({"namespace": None}, "namespace", "must not be null"),
    ({"condition": None}, "condition", "must not be null"),
    ({"namespace": {"name": "hero", "start": 0.5, "end": 0.5}}, "namespace", "start must be below end"),
    ({"namespace": {"name": "hero", "start": 0.5, "end": 1.5}}, "namespace.end", "Input should be less than"),
    ({"namespace": {"name": "hero", "start": -0.1, "end": 0.5}}, "namespace.start", "Input should be greater"),
    ({"namespace": {"name": "a b", "start": 0, "end": 0.5}}, "namespace.name", "String should match pattern"),
    ({"namespace": {"name": "hero", "start": 0}}, "namespace.end", "Field required"),
    ({"condition": {"utm_source": {"$inn": ["google"]}}}, "condition", "utm_source.$inn: unknown operator"),
    ({"condition": {"country": "fr"}}, "condition", "country: unknown attribute"),
    ({"condition": {"utm_source": {"$in": [f"s{i:04}" for i in range(400)]}}}, "condition",
     "must be at most 2048 bytes"),
    ({"condition": ["utm_source"]}, "condition", "Input should be a valid dictionary"),
])
def test_definition_rules_name_the_field(ab_client, admin_headers, changes, field, message):
    response = create(ab_client, admin_headers, **changes)
    assert response.status_code == 400
    assert errors(response)[field].startswith(message), errors(response)


def test_namespace_and_condition_change_and_go_only_in_draft(ab_client, admin_headers):
    create(ab_client, admin_headers)
    namespace = {"name": "hero", "start": 0.0, "end": 0.5}
    assert patch(ab_client, admin_headers, namespace=namespace, condition={"device": "mobile"}).status_code == 200
    removed = patch(ab_client, admin_headers, namespace=None, condition=None)
    assert removed.status_code == 200
    assert (removed.get_json()["namespace"], removed.get_json()["condition"]) == (None, None)
    patch(ab_client, admin_headers, namespace=namespace, condition={"device": "mobile"}, status="running")
    for changes in ({"namespace": None}, {"condition": None}, {"namespace": {**namespace, "end": 0.6}},
                    {"condition": {"device": "tablet"}}):
        refused = patch(ab_client, admin_headers, **changes)
        assert refused.status_code == 400
        [field] = changes
        assert errors(refused)[field] == f"the {field} is fixed once an experiment has started"
    # sending what is already there is no change
    assert patch(ab_client, admin_headers, namespace=namespace, condition={"device": "mobile"}).status_code == 200
    body = ab_client.get("/experiments/hero_test").get_json()
    assert (body["namespace"], body["condition"]) == (namespace, {"device": "mobile"})


@pytest.mark.parametrize("field", ["description", "variants", "coverage", "seed", "status"])
def test_null_is_no_way_to_change_a_field(ab_client, admin_headers, field):
    create(ab_client, admin_headers)
    response = patch(ab_client, admin_headers, **{field: None})
    assert response.status_code == 400 and errors(response) == {field: "must not be null"}


def test_overrides_change_while_running_and_are_audited(ab_client, admin_headers):
    create(ab_client, admin_headers, status="running")
    variants = [{"name": "A", "weight": 0.2}, {"name": "B", "weight": 0.4, "overrides": {"cta_text": "Go"}},
                {"name": "C", "weight": 0.4}]
    changed = patch(ab_client, admin_headers, variants=variants)
    assert changed.status_code == 200
    # B's overrides replaced; A and C, sent without overrides, keep theirs
    assert [v["overrides"] for v in changed.get_json()["variants"]] == [
        {}, {"cta_text": "Go"}, TEST["variants"][2]["overrides"]]
    [entry] = [e for e in ab_client.get("/audit", headers=admin_headers).get_json()["entries"]
               if e["key"] == "hero_test" and e["action"] == "update"]
    assert entry["old"]["variants"][1]["overrides"] == {"cta_text": "Start free"}
    assert entry["new"]["variants"][1]["overrides"] == {"cta_text": "Go"}
    bad = patch(ab_client, admin_headers, variants=[{**v, "overrides": {"layout": "grid"}} for v in variants])
    assert bad.status_code == 400 and set(errors(bad)) == {f"variants.{i}.overrides.layout" for i in range(3)}
    renamed = patch(ab_client, admin_headers, variants=[{"name": "X", "weight": 0.5}, {"name": "Y", "weight": 0.5}])
    assert renamed.status_code == 400 and "variants" in errors(renamed)


# Conflicts -------------------------------------------------------------------------------------------

def conflict_of(response) -> list[tuple[str, str]]:
    assert response.status_code == 409, response.get_json()
    body = response.get_json()
    assert body["error"] == "conflict"
    return sorted((e["field"], e["message"]) for e in body["errors"])


def test_creating_a_running_experiment_on_a_flag_another_one_overrides_is_refused(ab_client, admin_headers):
    variants = [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"layout": "split",
                                                                                         "cta_text": "Go"}}]
    refused = create(ab_client, admin_headers, variants=variants, status="running")
    assert conflict_of(refused) == [("overrides.layout", "also overridden by the running experiment 'landing'")]
    assert "'landing' overrides 'layout'" in refused.get_json()["message"]
    assert ab_client.get("/experiments/hero_test").status_code == 404
    # as a draft it is kept; starting it is refused until landing stops
    assert create(ab_client, admin_headers, variants=variants).status_code == 201
    conflict_of(patch(ab_client, admin_headers, status="running"))
    assert ab_client.get("/experiments/hero_test").get_json()["status"] == "draft"
    assert patch(ab_client, admin_headers, key="landing", status="stopped").status_code == 200
    assert patch(ab_client, admin_headers, status="running").status_code == 200
    # and now restarting landing is refused, naming hero_test and the one flag they share
    assert conflict_of(patch(ab_client, admin_headers, key="landing", status="running")) == [
        ("overrides.layout", "also overridden by the running experiment 'hero_test'")]


def test_disjoint_ranges_of_one_namespace_may_share_flags(ab_client, admin_headers):
    first = create(ab_client, admin_headers, status="running", namespace={"name": "hero", "start": 0, "end": 0.5})
    assert first.status_code == 201
    second = {**TEST, "key": "hero_two", "status": "running"}
    for namespace, ok in [(None, False), ({"name": "other", "start": 0.5, "end": 1}, False),
                          ({"name": "hero", "start": 0.4, "end": 1}, False),
                          ({"name": "hero", "start": 0.5, "end": 1}, True)]:
        body = {**second, "namespace": namespace} if namespace else second
        response = ab_client.post("/experiments", json=body, headers=admin_headers)
        if ok:
            assert response.status_code == 201
        else:
            assert [m for _, m in conflict_of(response)] == [
                "also overridden by the running experiment 'hero_test'"] * 2  # accent_color and cta_text


def test_growing_overrides_while_running_is_checked_too(ab_client, admin_headers):
    create(ab_client, admin_headers, status="running")
    variants = [{"name": v["name"], "weight": v["weight"]} for v in TEST["variants"]]
    variants[0]["overrides"] = {"hero_headline": "Hello"}
    assert conflict_of(patch(ab_client, admin_headers, variants=variants)) == [
        ("overrides.hero_headline", "also overridden by the running experiment 'landing'")]
    # a stopped experiment competes with no one
    patch(ab_client, admin_headers, key="landing", status="stopped")
    assert patch(ab_client, admin_headers, variants=variants).status_code == 200


# Flags: allowed values ---------------------------------------------------------------------------------

def test_layout_lists_its_allowed_values(ab_client):
    flags = {f["key"]: f for f in ab_client.get("/flags").get_json()["flags"]}
    assert flags["layout"]["allowed"] == ["centered", "split"]
    assert flags["cta_text"]["allowed"] is None
    assert flags["hero_headline"]["value"] == "Ship experiments, not guesses"


def test_allowed_values_bind_the_flag_and_its_overrides(ab_client, admin_headers):
    flag = {"key": "theme", "type": "string", "value": "light", "allowed": ["light", "dark"]}
    assert ab_client.post("/flags", json=flag, headers=admin_headers).status_code == 201
    for body, field in [({**flag, "key": "t2", "value": "blue"}, "value"),
                        ({**flag, "key": "t2", "off_value": "blue"}, "off_value"),
                        ({**flag, "key": "t2", "type": "boolean", "value": True}, "allowed"),
                        ({**flag, "key": "t2", "allowed": []}, "allowed"),
                        ({**flag, "key": "t2", "allowed": None}, "allowed")]:
        response = ab_client.post("/flags", json=body, headers=admin_headers)
        assert response.status_code == 400 and field in errors(response), body
    assert ab_client.patch("/flags/theme", json={"value": "blue"}, headers=admin_headers).status_code == 400
    assert ab_client.post("/config", json={"theme": "blue"}, headers=admin_headers).status_code == 400
    assert ab_client.post("/config", json={"theme": "dark"}, headers=admin_headers).status_code == 200
    create(ab_client, admin_headers, variants=[{"name": "A", "weight": 0.5},
                                               {"name": "B", "weight": 0.5, "overrides": {"theme": "light"}}])
    narrowed = ab_client.patch("/flags/theme", json={"allowed": ["dark"]}, headers=admin_headers)
    assert narrowed.status_code == 400
    assert errors(narrowed)["allowed"] == "experiment 'hero_test', variant B: theme must be one of 'dark'"
    widened = ab_client.patch("/flags/theme", json={"allowed": ["dark", "light", "sepia"]}, headers=admin_headers)
    assert widened.status_code == 200 and widened.get_json()["allowed"] == ["dark", "light", "sepia"]
    lifted = ab_client.patch("/flags/theme", json={"allowed": None}, headers=admin_headers)
    assert lifted.status_code == 200 and lifted.get_json()["allowed"] is None
    assert ab_client.patch("/flags/theme", json={"value": "blue"}, headers=admin_headers).status_code == 200


# Assignment with attributes --------------------------------------------------------------------------

def test_a_utm_source_condition_admits_exactly_the_matching_visitors(ab_client, admin_headers):
    create(ab_client, admin_headers, status="running", condition={"utm_source": "google"},
           variants=[{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Go"}}])
    sources = ["google", "newsletter", "bing", None]
    admitted = {source: 0 for source in sources}
    for i in range(400):
        source = sources[i % 4]
        query = f"/assign?experiment=hero_test&visitor_id=v{i}" + (f"&utm_source={source}" if source else "")
        body = ab_client.get(query).get_json()
        admitted[source] += body["in_experiment"]
        if not body["in_experiment"]:
            assert body["variant"] == "A"
    assert admitted == {"google": 100, "newsletter": 0, "bing": 0, None: 0}
    # a stored assignment wins whatever is sent later
    assert ab_client.get("/assign?experiment=hero_test&visitor_id=v0").get_json()["in_experiment"] is True


@pytest.mark.parametrize("query,field", [
    ("visitor_id=v1&device=phone", "device"), ("visitor_id=v1&returning=maybe", "returning"),
    ("visitor_id=v1&utm_source=" + "x" * 65, "utm_source"), ("visitor_id=+&device=mobile", "visitor_id"),
])
def test_attributes_are_checked(ab_client, query, field):
    response = ab_client.get(f"/assign?{query}")
    assert response.status_code == 400
    assert field in errors(response)


def test_attributes_reach_the_condition(ab_client, admin_headers):
    create(ab_client, admin_headers, status="running", condition={
        "device": {"$in": ["mobile", "tablet"]}, "returning": True, "browser": {"$regexi": "^chrome"}},
        variants=[{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Go"}}])

    def in_it(visitor, **attributes):
        query = "&".join(f"{k}={v}" for k, v in attributes.items())
        return ab_client.get(f"/assign?experiment=hero_test&visitor_id={visitor}&{query}").get_json()["in_experiment"]

    assert in_it("a", device="mobile", returning="true", browser="Chrome Mobile")
    assert not in_it("b", device="mobile", returning="false", browser="Chrome Mobile")
    assert not in_it("c", device="desktop", returning="true", browser="Chrome")
    assert not in_it("d", device="tablet", returning="true", browser="Firefox")


def test_disjoint_namespaces_never_share_a_visitor(ab_client, admin_headers):
    """10,000 visitors evaluated with the definitions the API serves, and a sample through /assign."""
    for key, namespace in [("left", {"name": "hero", "start": 0, "end": 0.5}),
                           ("right", {"name": "hero", "start": 0.5, "end": 1})]:
        assert create(ab_client, admin_headers, key=key, status="running", namespace=namespace).status_code == 201
    flags = ab_client.get("/flags").get_json()["flags"]
    experiments = [e for e in ab_client.get("/experiments").get_json()["experiments"] if e["key"] != "landing"]
    counts = {"left": 0, "right": 0, "both": 0}
    for i in range(10_000):
        exposures = evaluate(flags, experiments, {"id": f"visitor-{i}"}).exposures
        counts["both"] += len(exposures) == 2
        for key in exposures:
            counts[key] += 1
        if i % 50 == 0:
            through_api = {key for key in ("left", "right")
                           if ab_client.get(f"/assign?experiment={key}&visitor_id=visitor-{i}").get_json()[
                               "in_experiment"]}
            assert through_api == set(exposures)
    assert counts["both"] == 0
    assert 4700 < counts["left"] < 5300 and counts["left"] + counts["right"] == 10_000
