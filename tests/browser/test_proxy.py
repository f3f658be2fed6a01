"""The product in Chromium through the production proxy: the dashboard works under the proxy's
Content-Security-Policy, and the landing page's scripts report through it."""
import pytest
import requests

from harness.processes import ADMIN_TOKEN, wait_for
from harness.proxy import start_proxy
from tests.helpers import require_nginx

pytestmark = pytest.mark.browser

VIEWS = ["Overview", "Experiment results", "Stats", "Explore", "Experiments", "Feature toggles", "Audit log",
         "Webhooks"]
# Chromium reports a CSP violation on the console too; this names the directive whatever the wording.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation",
    (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def proxy(stack, tmp_path_factory):
    require_nginx()
    proxy = start_proxy(tmp_path_factory.mktemp("nginx"), stack.landing.port, stack.dashboard.port)
    yield proxy
    proxy.stop()


def test_visitor_reports_through_the_proxy(proxy, page):
    page.goto(proxy.url + "/")
    assert page.locator("body").get_attribute("class") in ("layout-centered", "layout-split")
    with page.expect_response(lambda r: r.url.endswith("/track")) as click:
        page.locator("#cta").click()
    assert click.value.status == 202
    assert page.console_problems == []


def test_every_dashboard_view_works_under_the_proxys_csp(stack, proxy, page):
    for _ in range(3):
        visitor = requests.Session()
        visitor.get(proxy.url + "/", timeout=10)
        visitor.post(proxy.url + "/track", json={"event_type": "cta_click"}, timeout=10)
    wait_for(lambda: requests.get(f"{stack.metrics.url}/stats", timeout=5).json()["total_events"] >= 6)
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    response = page.goto(proxy.dashboard_url)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_label("Token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as admin").wait_for()  # the WebSocket carried the sign-in both ways
    for view in VIEWS:
        page.get_by_text(view, exact=True).first.click()
        page.get_by_role("heading", name=view).wait_for()
        if view in ("Stats", "Experiment results", "Explore"):
            page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg.marks') \
                .first.wait_for()
    assert page.console_problems == []
