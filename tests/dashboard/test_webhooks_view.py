import requests

from tests.helpers import ADMIN_TOKEN, open_view, shown


def test_webhooks_are_for_admins(backends):
    at = open_view("Webhooks")
    assert any("Sign in" in i.value for i in at.info)
    assert not at.dataframe


def test_an_admin_adds_a_webhook_sees_its_secret_once_and_deletes_it(backends):
    ab, _ = backends
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    at = open_view("Webhooks", token=ADMIN_TOKEN)
    at.text_input(key="webhook_url").input("https://hooks.example.com/<b>lab</b>")
    at.multiselect(key="webhook_events").set_value(["srm.detected", "no_data"])
    at.button(key="webhook_add").click().run()
    assert not at.exception
    assert any("Added the webhook" in s.value for s in at.success), [e.value for e in at.error]
    [stored] = requests.get(f"{ab.url}/webhooks", headers=admin, timeout=5).json()["webhooks"]
    assert stored["events"] == ["srm.detected", "no_data"]
    assert [c.value for c in at.code][0].startswith("whsec_")
    table = at.dataframe[0].value
    assert list(table["URL"]) == ["https://hooks.example.com/<b>lab</b>"] and list(table["Pending"]) == [0]

    at.run()  # shown once
    assert not at.code

    at.button(key="ask_webhook_delete").click().run()
    assert any("Delete the webhook" in shown(w.value) for w in at.warning)
    at.button(key="confirm_webhook_delete").click().run()
    assert requests.get(f"{ab.url}/webhooks", headers=admin, timeout=5).json()["webhooks"] == []
    assert any("Deleted" in s.value for s in at.success)


def test_a_refused_webhook_says_why(backends):
    at = open_view("Webhooks", token=ADMIN_TOKEN)
    at.text_input(key="webhook_url").input("ftp://example.com/x")
    at.button(key="webhook_add").click().run()
    assert any("Not added" in e.value and "url" in e.value for e in at.error)
