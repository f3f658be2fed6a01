"""A click on a data-track element of the landing page, in real Chromium, reaches its metric's results."""
import pytest
import requests

from harness.processes import ADMIN_TOKEN, SECRET_KEY, wait_for
from landing.sticky import COOKIE, StickyCookie

pytestmark = pytest.mark.browser
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# An element the page's own markup could carry: the script reports clicks on any [data-track] element,
# added later or not (one listener on the document).
ADD_PRICING_BUTTON = """() => {
  const button = document.createElement("button");
  button.id = "pricing";
  button.type = "button";
  button.textContent = "See pricing";
  button.setAttribute("data-track", "pricing_click");
  button.setAttribute("data-track-value", "30");
  document.querySelector("main").appendChild(button);
}"""


def results(stack, metric):
    return requests.get(f"{stack.metrics.url}/experiments/landing/results", params={"metric": metric},
                        timeout=5).json()


def test_a_data_track_click_shows_in_its_metrics_results(landing_stack, page):
    stack = landing_stack
    metrics = stack.metrics.url
    requests.post(f"{metrics}/event-types", json={"key": "pricing_click", "description": "Opened the pricing"},
                  headers=ADMIN, timeout=5).raise_for_status()
    for definition in ({"key": "pricing", "name": "Opened the pricing", "kind": "conversion"},
                       {"key": "pricing_value", "name": "Pricing value per visitor", "kind": "value"}):
        requests.post(f"{metrics}/metrics", json={**definition, "event_type": "pricing_click"}, headers=ADMIN,
                      timeout=5).raise_for_status()

    page.goto(stack.landing.url + "/")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    variant = StickyCookie(SECRET_KEY).loads(cookies[COOKIE])["landing"]
    page.evaluate(ADD_PRICING_BUTTON)
    with page.expect_response(lambda r: r.url.endswith("/track")) as click:
        page.locator("#pricing").click()
    assert click.value.status == 202 and click.value.json()["recorded"] == "pricing_click"
    assert page.console_problems == []

    def converted():
        body = results(stack, "pricing")
        return next((v for v in body["variants"] if v["variant"] == variant and v["conversions"]), None)

    row = wait_for(converted, timeout=30)
    assert (row["visitors"], row["conversions"], row["rate"]) == (1, 1, 1.0)
    value = next(v for v in results(stack, "pricing_value")["variants"] if v["variant"] == variant)
    assert value["mean"] == 30.0 and value["conversions"] == 1
