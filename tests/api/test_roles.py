"""Roles: every route of every service, called with no token, a wrong one, the ingest key and a token of
each role, answers as the permission matrix (core.roles) says; the routes are read from each app's
url_map, so a route the matrix does not list fails here."""
from __future__ import annotations

import re

import pytest

from core.roles import INGEST, PERMISSIONS, READ, Role, allows, lowest_role, markdown_table
from core.settings import DEFAULT_CLIENT_KEY
from tests.helpers import INGEST_KEY, ROOT, LiveServer, flask_app, make_landing

TOKENS = {role: f"{role.label}-secret" for role in Role}
API_TOKENS = ",".join(f"{role.label}-user:{role.label}:{token}" for role, token in TOKENS.items())
CALLERS = {"no token": None, "wrong token": "not-a-token", "ingest key": INGEST_KEY,
           **{role.label: token for role, token in TOKENS.items()}}
PATH_VALUES = {"client_key": DEFAULT_CLIENT_KEY, "key": "landing", "filename": "page.css", "schedule_id": "1",
               "webhook_id": "1"}


def served_routes(app) -> set[str]:
    """"METHOD /rule" of every route the app serves (HEAD and OPTIONS answer as GET and CORS do)."""
    return {f"{method} {rule.rule}" for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def concrete(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: PATH_VALUES[m.group(1)], rule)


def service_env(db_url: str, public_reads: bool) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "API_TOKENS": API_TOKENS, "INGEST_KEY": INGEST_KEY,
            "PUBLIC_READS": str(public_reads).lower()}


@pytest.fixture(params=[False, True], ids=["reads closed", "PUBLIC_READS"])
def public_reads(request):
    return request.param


@pytest.fixture(params=list(PERMISSIONS))
def app(request, tmp_path, closed_port_url, public_reads):
    service = request.param
    if service == "landing":
        yield make_landing(tmp_path, closed_port_url, closed_port_url, API_TOKENS=API_TOKENS,
                           PUBLIC_READS=str(public_reads).lower())
        return
    with flask_app(service, **service_env(f"sqlite:///{tmp_path / 'x.db'}", public_reads)) as app:
        yield app


def test_the_matrix_lists_exactly_the_served_routes(app):
    assert served_routes(app) == set(PERMISSIONS[app.import_name]), (
        "add each new route to core.roles.PERMISSIONS (and the README's table)")


def expected(access, caller: str, public_reads: bool) -> int | None:
    """None when the caller gets through (any status but 401/403), else the refusal's status."""
    role = next((r for r in Role if r.label == caller), None)
    if allows(access, role, public_reads) or (access == INGEST and caller == "ingest key"):
        return None
    return 403 if role is not None else 401


def test_every_route_answers_each_caller_as_the_matrix_says(app, public_reads):
    client = app.test_client()
    wrong = []
    for route in sorted(served_routes(app)):
        method, rule = route.split(" ", 1)
        access = PERMISSIONS[app.import_name][route]
        for caller, token in CALLERS.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = {} if method in ("POST", "PATCH", "PUT") else None
            response = client.open(concrete(rule), method=method, headers=headers, json=body)
            want = expected(access, caller, public_reads)
            got = response.status_code
            if (want is None and got in (401, 403)) or (want is not None and got != want):
                wrong.append(f"{route} as {caller}: {got}, expected {want or 'neither 401 nor 403'}")
            elif want == 403:
                answer = response.get_json()
                need = lowest_role(access)
                if (answer["error"], answer["required_role"]) != ("forbidden", need.label):
                    wrong.append(f"{route} as {caller}: 403 body {answer}")
            elif want == 401 and "WWW-Authenticate" not in response.headers:
                wrong.append(f"{route} as {caller}: 401 without WWW-Authenticate")
    assert not wrong, "\n".join(wrong)


def test_a_write_is_recorded_under_the_name_of_the_token(tmp_path):
    with flask_app("ab_service", **service_env(f"sqlite:///{tmp_path / 'ab.db'}", False)) as app:
        client = app.test_client()
        editor = {"Authorization": f"Bearer {TOKENS[Role.EDITOR]}"}
        assert client.patch("/flags/cta_text", json={"value": "Try it"}, headers=editor).status_code == 200
        refused = client.get("/audit", headers=editor)
        assert refused.status_code == 403
        assert refused.get_json()["required_role"] == "admin" and refused.get_json()["role"] == "editor"
        entries = client.get("/audit", headers={"Authorization": f"Bearer {TOKENS[Role.ADMIN]}"}).get_json()
        assert entries["entries"][0]["actor"] == "editor-user"
        assert client.get("/whoami", headers=editor).get_json() == {"name": "editor-user", "role": "editor"}


def test_admin_token_and_admin_tokens_still_mean_admin(tmp_path):
    with flask_app("ab_service", DATABASE_URL=f"sqlite:///{tmp_path / 'ab.db'}", ADMIN_TOKEN="single",
                   ADMIN_TOKENS="alice:alices") as app:
        client = app.test_client()
        for token, name in (("single", "admin"), ("alices", "alice")):
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/whoami", headers=headers).get_json() == {"name": name, "role": "admin"}
            assert client.get("/audit", headers=headers).status_code == 200


def test_the_landing_service_reads_definitions_with_its_viewer_token(tmp_path, closed_port_url):
    with flask_app("ab_service", **service_env(f"sqlite:///{tmp_path / 'ab.db'}", False)) as ab_app:
        admin = {"Authorization": f"Bearer {TOKENS[Role.ADMIN]}"}
        assert ab_app.test_client().patch("/flags/cta_text", json={"value": "Read with a token"},
                                          headers=admin).status_code == 200
        ab = LiveServer(ab_app)
        try:
            without = make_landing(tmp_path / "without", ab.url, closed_port_url)
            assert without.extensions["definitions"].refresh() is False  # 401: the seed copy stays
            landing = make_landing(tmp_path / "with", ab.url, closed_port_url,
                                   AB_SERVICE_TOKEN=TOKENS[Role.VIEWER])
            assert landing.extensions["definitions"].refresh() is True
            flags = {flag["key"]: flag["value"] for flag in landing.extensions["definitions"].current().flags}
            assert flags["cta_text"] == "Read with a token"
        finally:
            ab.stop()


def test_the_openapi_descriptions_state_the_role_of_each_route(tmp_path):
    with flask_app("ab_service", **service_env(f"sqlite:///{tmp_path / 'ab.db'}", False)) as app:
        paths = app.test_client().get("/openapi.json").get_json()["paths"]
    assert paths["/flags"]["post"]["security"] == [{"token": ["editor"]}]
    assert paths["/flags"]["get"]["security"] == [{"token": ["viewer"]}]
    assert paths["/audit"]["get"]["security"] == [{"token": ["admin"]}]
    assert paths["/assignments"]["post"]["security"] == [{"ingestKey": []}, {"token": ["admin"]}]
    assert "security" not in paths["/assign"]["get"]
    assert {"401", "403"} <= set(paths["/flags"]["post"]["responses"])


def test_the_readme_prints_the_matrix():
    assert markdown_table() in (ROOT / "README.md").read_text(), "paste `python -m core.roles` into the README"


def test_public_reads_opens_reads_only():
    opened = [route for routes in PERMISSIONS.values() for route, access in routes.items()
              if allows(access, None, public_reads=True) and not allows(access, None)]
    assert opened and all(route.startswith("GET ") for route in opened)
    assert not allows(Role.ANALYST, None, public_reads=True) and not allows(READ, None)
