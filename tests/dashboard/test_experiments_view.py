import requests

from tests.helpers import ADMIN_TOKEN, open_view, shown


def test_read_only_without_sign_in(backends):
    at = open_view("Experiments")
    assert list(at.dataframe[0].value["Experiment"]) == ["landing"]
    assert not [b for b in at.button if b.key == "new_create"]


def test_weights_are_checked_live_and_create_writes_a_draft(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.text_input(key="new_key").input("hero")
    at.number_input(key="new_weight_0").set_value(0.7).run()
    assert any("must sum to 1" in e.value for e in at.error)
    assert at.button(key="new_create").disabled
    at.number_input(key="new_weight_1").set_value(0.3).run()
    assert not any("must sum to 1" in e.value for e in at.error)
    at.slider(key="new_coverage").set_value(80)
    at.button(key="new_create").click().run()
    assert any("Created" in s.value for s in at.success), [e.value for e in at.error]
    created = requests.get(f"{ab.url}/experiments/hero", timeout=5).json()
    assert created["status"] == "draft" and created["coverage"] == 0.8
    assert [v["weight"] for v in created["variants"]] == [0.7, 0.3]


def test_stopping_needs_confirmation(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.button(key="ask_status").click().run()
    question = "Stop experiment 'landing'? It goes from running to stopped."
    assert any(shown(w.value).startswith(question) for w in at.warning)
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["status"] == "running"
    at.button(key="cancel_status").click().run()
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["status"] == "running"
    at.button(key="ask_status").click().run()
    at.button(key="confirm_status").click().run()
    assert requests.get(f"{ab.url}/experiments/landing", timeout=5).json()["status"] == "stopped"
    assert any("now stopped" in s.value for s in at.success)
