import requests

from tests.helpers import ADMIN_TOKEN, open_view, shown


def test_admin_controls_need_a_valid_token(backends):
    at = open_view("Feature toggles")
    assert "toggle_show_testimonials" not in [t.key for t in at.toggle]
    assert any("Sign in" in i.value for i in at.info)
    at.sidebar.text_input(key="admin_password").input("not-the-token")
    at.sidebar.button(key="sign_in").click().run()
    assert any("not accepted" in e.value for e in at.sidebar.error)
    assert "toggle_show_testimonials" not in [t.key for t in at.toggle]


def test_toggles_show_current_values_with_one_widget_per_type(backends):
    at = open_view("Feature toggles", token=ADMIN_TOKEN)
    assert at.toggle(key="toggle_show_testimonials").value is True
    assert at.text_input(key="text_cta_text").value == "Get started"
    assert at.number_input(key="number_promo_discount_percent").value == 20
    assert at.color_picker(key="color_accent_color").value == "#3b5bdb"
    assert at.slider(key="rollout_cta_text").value == 100


def test_saving_writes_through_ab_service(backends):
    ab, _ = backends
    at = open_view("Feature toggles", token=ADMIN_TOKEN)
    at.toggle(key="toggle_show_testimonials").set_value(False)
    at.text_input(key="text_cta_text").input("Start free")
    at.slider(key="rollout_show_promo_section").set_value(40)
    at.button[0].click().run()
    assert not at.exception
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    config = requests.get(f"{ab.url}/config", timeout=5).json()
    assert config["show_testimonials"] is False and config["cta_text"] == "Start free"
    promo = requests.get(f"{ab.url}/flags/show_promo_section", timeout=5).json()
    assert promo["rollout"] == 0.4
    audit = at.dataframe[0].value
    assert list(audit["What"][:3]) == ["flag show_promo_section", "flag show_testimonials", "flag cta_text"]
    assert list(audit["Old"][:3]) == ["rollout: 100%", "value: on", "value: Get started"]
    assert list(audit["New"][:3]) == ["rollout: 40%", "value: off", "value: Start free"]
    assert set(audit["Who"]) == {"admin"}


def test_a_rejected_save_shows_the_servers_message(backends):
    ab, _ = backends
    at = open_view("Feature toggles", token=ADMIN_TOKEN)
    at.text_input(key="text_cta_text").input("   ")
    at.button[0].click().run()
    assert any("cta_text" in shown(e.value) for e in at.error)
    assert requests.get(f"{ab.url}/config", timeout=5).json()["cta_text"] == "Get started"


def test_backend_down_is_said_plainly(down):
    at = open_view("Feature toggles")
    assert not at.exception
    assert any("unreachable" in e.value for e in at.error)
