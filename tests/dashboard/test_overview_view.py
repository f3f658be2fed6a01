"""The Overview page and the Audit log page, through AppTest against real ab_service and metrics_service."""
from datetime import UTC, datetime, timedelta

import requests

from tests.helpers import ADMIN_TOKEN, open_view, post_events, shown

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def visits(experiment, variant, count, days_ago, converted=0):
    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    events = [{"visitor_id": f"{experiment}-{variant}{i}", "experiment": experiment, "variant": variant,
               "event_type": "page_view", "timestamp": at} for i in range(count)]
    return events + [{**e, "event_type": "form_submit"} for e in events[:converted]]


def test_every_experiment_at_a_glance_newest_activity_first(backends):
    ab, metrics = backends
    for key in ("promo", "later"):
        requests.post(f"{ab.url}/experiments", headers=ADMIN, timeout=5, json={
            "key": key, "status": "running" if key == "promo" else "draft",
            "variants": [{"name": "A", "weight": 0.5}, {"name": "B", "weight": 0.5}]}).raise_for_status()
    post_events(metrics, visits("landing", "A", 150, 6, 30) + visits("landing", "B", 150, 5, 60)
                + visits("promo", "A", 600, 2) + visits("promo", "B", 400, 1))
    at = open_view("Overview")
    table = at.dataframe[0].value
    assert list(table["Experiment"]) == ["promo", "landing", "later"]
    rows = table.set_index("Experiment")
    assert rows.loc["landing", "Status"] == "running" and rows.loc["landing", "Days running"] == "6"
    assert rows.loc["landing", "Exposed visitors"] == "300"
    assert rows.loc["landing", "Primary result (form_submit)"].startswith("B beats A: +100.0% (")
    assert (rows.loc["promo", "SRM"], rows.loc["landing", "SRM"], rows.loc["later", "SRM"]) == ("mismatch", "ok", "—")
    assert (rows.loc["later", "Days running"], rows.loc["later", "Last activity"]) == ("—", "—")
    assert {m.label: m.value for m in at.metric} == {"Experiments": "3", "Running": "2",
                                                     "Sample ratio mismatches": "1"}
    assert any("Visitors are not split as configured in: promo." in shown(e.value) for e in at.error)


def test_the_audit_log_is_for_admins_and_reads_as_old_and_new(backends):
    ab, _ = backends
    requests.patch(f"{ab.url}/experiments/landing", json={"coverage": 0.5}, headers=ADMIN,
                   timeout=5).raise_for_status()
    at = open_view("Audit log")
    assert not at.dataframe and any("Sign in" in i.value for i in at.info)
    at = open_view("Audit log", token=ADMIN_TOKEN)
    newest = at.dataframe[0].value.iloc[0]
    assert (newest["Who"], newest["What"], newest["Changed"]) == ("admin", "experiment landing", "coverage")
    assert (newest["Old"], newest["New"]) == ("coverage: 100%", "coverage: 50%")
    at.segmented_control(key="audit_kind").set_value("Toggles").run()
    assert not at.dataframe[0].value["What"].str.startswith("experiment").any()
