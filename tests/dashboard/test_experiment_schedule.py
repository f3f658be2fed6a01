from datetime import date, time, timedelta

import requests

from tests.helpers import ADMIN_TOKEN, open_view, shown

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_an_experiment_is_created_with_start_and_stop_times(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.text_input(key="new_key").input("launch")
    at.checkbox(key="new_start_at_on").check().run()
    at.checkbox(key="new_stop_at_on").check().run()
    start_day = date.today() + timedelta(days=3)
    at.date_input(key="new_start_at_day").set_value(start_day)
    at.time_input(key="new_start_at_time").set_value(time(9, 30))
    at.date_input(key="new_stop_at_day").set_value(start_day + timedelta(days=7))
    at.time_input(key="new_stop_at_time").set_value(time(18, 0))
    at.button(key="new_create").click().run()
    assert not at.exception
    assert any("Created" in s.value for s in at.success), [e.value for e in at.error]
    created = requests.get(f"{ab.url}/experiments/launch", timeout=5).json()
    assert created["start_at"] == f"{start_day.isoformat()}T09:30:00.000Z"
    assert created["stop_at"] == f"{(start_day + timedelta(days=7)).isoformat()}T18:00:00.000Z"
    table = at.dataframe[0].value
    scheduled = dict(zip(table["Experiment"], table["Scheduled"], strict=True))
    assert scheduled["launch"] == f"starts {start_day} 09:30 UTC · stops {start_day + timedelta(days=7)} 18:00 UTC"


def test_a_stop_before_the_start_is_refused_by_the_field(backends):
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.text_input(key="new_key").input("backwards")
    at.checkbox(key="new_start_at_on").check().run()
    at.checkbox(key="new_stop_at_on").check().run()
    at.date_input(key="new_stop_at_day").set_value(date.today() + timedelta(days=1))
    at.date_input(key="new_start_at_day").set_value(date.today() + timedelta(days=5))
    at.button(key="new_create").click().run()
    assert any("stop_at: must be after start_at" in shown(e.value) for e in at.error)


def test_a_scheduled_stop_is_set_and_cancelled_in_the_edit_form(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)  # editing the running `landing`
    assert at.checkbox(key="edit_landing_start_at_on").disabled  # it is running already
    at.checkbox(key="edit_landing_stop_at_on").check().run()
    stop_day = date.today() + timedelta(days=2)
    at.date_input(key="edit_landing_stop_at_day").set_value(stop_day)
    at.time_input(key="edit_landing_stop_at_time").set_value(time(12, 0)).run()
    at.button(key="edit_landing_save").click().run()
    assert any("stop_at" in shown(w.value) for w in at.warning)
    at.button(key="confirm_save").click().run()
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["stop_at"] == f"{stop_day}T12:00:00.000Z"

    at.checkbox(key="edit_landing_stop_at_on").uncheck().run()
    at.button(key="edit_landing_save").click().run()
    at.button(key="confirm_save").click().run()
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["stop_at"] is None
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["status"] == "running"
