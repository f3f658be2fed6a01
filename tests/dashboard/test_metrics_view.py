"""The Metrics page, the metric picker and summary card of Experiment results, and the planning calculator."""
import random

import requests

from tests.helpers import ADMIN_TOKEN, open_view, post_events, register_event_types, shown

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def arm(variant, visitors, conversions, metric="form_submit", errors=0):
    events = [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "page_view"} for i in range(visitors)]
    events += [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": metric} for i in range(conversions)]
    events += [{"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "js_error"} for i in range(errors)]
    return events


def define(metrics, *definitions, event_types=("js_error", "order")):
    register_event_types(metrics, *event_types)
    for definition in definitions:
        requests.post(f"{metrics.url}/metrics", json=definition, headers=ADMIN, timeout=10).raise_for_status()


ERRORS = {"key": "errors", "name": "Visitors with an error", "event_type": "js_error", "kind": "conversion",
          "direction": "decrease"}
REVENUE = {"key": "revenue", "name": "Revenue per visitor", "event_type": "order", "kind": "value"}


def test_the_metrics_page_lists_definitions_and_admins_define_metrics(backends):
    _, metrics = backends
    define(metrics, event_types=("order",))
    reader = open_view("Metrics")
    assert list(reader.dataframe[0].value["Metric"]) == ["cta_click", "form_submit"]
    assert any("Sign in" in i.value for i in reader.info)
    at = open_view("Metrics", token=ADMIN_TOKEN)
    at.text_input(key="metric_key").input("revenue")
    at.text_input(key="metric_name").input("<b>Revenue</b> per visitor")
    at.selectbox(key="metric_event_type").select("order")
    at.selectbox(key="metric_kind").select("value")
    at.number_input(key="metric_cap").set_value(200.0)
    at.button[0].click().run()  # the metric form's submit button
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Metric"]) == ["cta_click", "form_submit", "revenue"]
    row = table[table["Metric"] == "revenue"].iloc[0]
    assert (row["Kind"], row["Cap"], row["Event"]) == ("value per visitor", "200.00", "order")
    stored = requests.get(f"{metrics.url}/metrics/revenue", timeout=10).json()
    assert stored["name"] == "<b>Revenue</b> per visitor" and stored["cap"] == 200.0
    at.text_input(key="event_type_key").input("pricing_click")
    at.button[1].click().run()
    assert "pricing_click" in [t["key"] for t in requests.get(f"{metrics.url}/event-types", timeout=10).json()[
        "event_types"]]


def test_the_summary_card_names_the_blocking_guardrail(backends):
    ab, metrics = backends
    define(metrics, ERRORS, event_types=("js_error",))
    requests.patch(f"{ab.url}/experiments/landing", json={"primary_metric": "form_submit",
                                                          "guardrail_metrics": ["errors"]},
                   headers=ADMIN, timeout=10).raise_for_status()
    post_events(metrics, arm("A", 2000, 200, errors=40) + arm("B", 2000, 320, errors=260))
    at = open_view("Experiment results")
    assert "Blocked by a guardrail" in [shown(h.value) for h in at.subheader]
    assert any("guardrail errors is significantly worse" in shown(e.value) for e in at.error)
    assert any("Guardrail (blocking): Visitors with an error" in shown(m.value) for m in at.markdown)
    # A selectbox shows its options as plain text (no Markdown): no escapes in them.
    assert at.selectbox(key="results_metric").options[:2] == [
        "Signed up (form_submit): share of visitors with the event",
        "Visitors with an error (errors): share of visitors with the event, lower is better"]
    at.selectbox(key="results_metric").select("errors").run()
    assert not at.exception
    assert list(at.dataframe[0].value["Significance"]) == ["control", "worse"]


def test_a_value_metric_reads_as_a_mean_per_visitor(backends):
    _, metrics = backends
    define(metrics, REVENUE, event_types=("order",))
    rng = random.Random(2)
    events = []
    for variant in "AB":
        for i in range(150):
            events.append({"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "page_view"})
            if i % 3 == 0:
                events.append({"visitor_id": f"{variant}{i}", "variant": variant, "event_type": "order",
                               "value": round(rng.uniform(5, 50), 2)})
    post_events(metrics, events)
    at = open_view("Experiment results")
    at.selectbox(key="results_metric").select("revenue").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "Mean per visitor" in table.columns and list(table["Visitors with the event"]) == [50, 50]


def test_the_calculator_plans_from_the_observed_traffic(backends):
    _, metrics = backends
    post_events(metrics, arm("A", 500, 50) + arm("B", 500, 55))
    at = open_view("Experiment results")
    at.number_input(key="plan_mde").set_value(20.0).run()
    assert not at.exception
    plan = requests.get(f"{metrics.url}/experiments/landing/plan?metric=form_submit&mde=0.2&power=0.8&alpha=0.05"
                        "&weights=A:0.5,B:0.5", timeout=10).json()
    texts = [shown(m.value) for m in at.markdown]
    assert any(t.startswith(f"{plan['per_variant']:,} visitors per variant") for t in texts), texts
    assert any("this experiment's 1,000 exposed visitors a day" in t for t in texts), texts
