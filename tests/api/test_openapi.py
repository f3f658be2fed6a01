"""Each service's /openapi.json describes every route it serves, and property-based fuzzing against
that description finds no server error and no answer outside it."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ADMIN_TOKEN, INGEST_KEY, make_landing, settings_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(params=["ab_service", "metrics_service", "landing"])
def any_app(request, tmp_path, closed_port_url):
    if request.param == "landing":
        return make_landing(tmp_path, closed_port_url, closed_port_url)
    module = __import__(request.param)
    return module.create_app(settings_for(request.param, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                                          ADMIN_TOKEN=ADMIN_TOKEN))


def served_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        operations |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def test_openapi_lists_exactly_the_served_routes(any_app):
    spec = any_app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert described == served_operations(any_app)


def test_every_json_operation_documents_its_errors(any_app):
    spec = any_app.test_client().get("/openapi.json").get_json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "413" in op["responses"], (path, method)
            if op.get("security"):
                assert "401" in op["responses"], (path, method)


def fuzz(app, headers=None) -> int:
    """Run property-based cases for every operation of the app's description; returns how many ran."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case):
            nonlocal ran
            ran += 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
    return ran


def test_fuzz_ab_service(tmp_path):
    from ab_service import create_app

    app = create_app(settings_for("ab_service", DATABASE_URL=f"sqlite:///{tmp_path / 'ab.db'}",
                                  ADMIN_TOKEN=ADMIN_TOKEN))
    assert fuzz(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) > 100


def test_fuzz_metrics_service(tmp_path):
    from metrics_service import create_app

    app = create_app(settings_for("metrics_service", DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}",
                                  INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN))
    # the admin token: ingest accepts it too, and the exports need it
    assert fuzz(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) > 100


def test_fuzz_landing(tmp_path, closed_port_url):
    assert fuzz(make_landing(tmp_path, closed_port_url, closed_port_url)) > 50
