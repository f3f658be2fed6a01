"""The Experiments page edits what each variant shows (issue 13): the widget that fits each flag's type,
the namespace and condition with their checks next to the field, and a preview link per variant."""
import requests

from dashboard.text import plain
from tests.helpers import ADMIN_TOKEN, open_view

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_each_variant_overrides_flags_with_the_widget_of_their_type(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.text_input(key="new_key").input("hero")
    at.multiselect(key="new_flags").set_value(
        ["cta_text", "layout", "show_testimonials", "promo_discount_percent", "accent_color"]).run()
    assert at.selectbox(key="select_new_ov_1_layout").options == ["centered", "split"]
    assert at.number_input(key="number_new_ov_1_promo_discount_percent").value == 20  # a whole number stays one
    assert at.toggle(key="toggle_new_ov_1_show_testimonials").value is True
    assert at.color_picker(key="color_new_ov_0_accent_color").value == "#3b5bdb"
    at.text_input(key="text_new_ov_1_cta_text").input("Start free")
    at.selectbox(key="select_new_ov_1_layout").set_value("split")
    at.toggle(key="toggle_new_ov_1_show_testimonials").set_value(False)
    at.number_input(key="number_new_ov_1_promo_discount_percent").set_value(30)
    at.color_picker(key="color_new_ov_1_accent_color").pick("#0b7285").run()
    at.button(key="new_create").click().run()
    assert any("Created" in s.value for s in at.success), [e.value for e in at.error]
    stored = requests.get(f"{ab.url}/experiments/hero", timeout=5).json()
    assert [v["overrides"] for v in stored["variants"]] == [{}, {
        "cta_text": "Start free", "layout": "split", "show_testimonials": False, "promo_discount_percent": 30,
        "accent_color": "#0b7285"}]
    # The new experiment is in the list and open for editing, its content shown as saved.
    assert "hero" in list(at.dataframe[0].value["Experiment"])
    assert at.text_input(key="text_edit_hero_ov_1_cta_text").value == "Start free"
    assert at.selectbox(key="select_edit_hero_ov_1_layout").value == "split"


def test_condition_and_namespace_are_checked_next_to_their_fields(backends):
    ab, _ = backends
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.text_input(key="new_key").input("targeted")
    at.text_area(key="new_condition").input('{"utm_source": ').run()
    assert any(e.value.startswith("Not valid JSON") for e in at.error)
    assert at.button(key="new_create").disabled
    at.checkbox(key="new_ns_on").check().run()
    at.text_input(key="new_ns_name").input("hero")
    at.slider(key="new_ns_range").set_value((0, 50))
    at.text_area(key="new_condition").input('{"colour": "red"}').run()
    assert not any(e.value.startswith("Not valid JSON") for e in at.error)
    at.button(key="new_create").click().run()  # ab_service knows no attribute "colour"
    assert any(plain("condition") in e.value and "colour" in e.value for e in at.error), [e.value for e in at.error]
    assert requests.get(f"{ab.url}/experiments/targeted", timeout=5).status_code == 404
    at.text_area(key="new_condition").input('{"utm_source": "newsletter"}').run()
    at.button(key="new_create").click().run()
    stored = requests.get(f"{ab.url}/experiments/targeted", timeout=5).json()
    assert stored["namespace"] == {"name": "hero", "start": 0.0, "end": 0.5}
    assert stored["condition"] == {"utm_source": "newsletter"}


def test_a_running_experiment_shows_its_targeting_read_only_and_links_a_preview_per_variant(backends, monkeypatch):
    ab, _ = backends
    monkeypatch.setenv("LANDING_URL", "https://lab.example")
    requests.post(f"{ab.url}/experiments", headers=ADMIN, timeout=5, json={
        "key": "cta_copy", "status": "running", "namespace": {"name": "copy", "start": 0.5, "end": 1.0},
        "condition": {"device": "mobile"},
        "variants": [{"name": "A", "weight": 0.5, "overrides": {}},
                     {"name": "B", "weight": 0.5, "overrides": {"cta_text": "Try it"}}]}).raise_for_status()
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.selectbox(key="edit_choice").set_value("cta_copy").run()
    assert at.text_area(key="edit_cta_copy_condition").disabled
    assert '"device": "mobile"' in at.text_area(key="edit_cta_copy_condition").value
    assert at.text_input(key="edit_cta_copy_ns_name").value == "copy" and at.text_input(
        key="edit_cta_copy_ns_name").disabled
    assert at.multiselect(key="edit_cta_copy_flags").value == ["cta_text"]
    links = {b.value: b.proto.url for b in at.get("link_button")}
    assert links == {plain("Preview A"): "https://lab.example/?force_variant=cta_copy:A",
                     plain("Preview B"): "https://lab.example/?force_variant=cta_copy:B"}
    # Content can change while it runs; the confirmation names the change.
    at.text_input(key="text_edit_cta_copy_ov_1_cta_text").input("Try it free").run()
    at.button(key="edit_cta_copy_save").click().run()
    assert any(plain("content of B: cta_text = Try it → cta_text = Try it free") in w.value for w in at.warning)
    at.button(key="confirm_save").click().run()
    stored = requests.get(f"{ab.url}/experiments/cta_copy", timeout=5).json()
    assert stored["variants"][1]["overrides"] == {"cta_text": "Try it free"}
    assert stored["namespace"] == {"name": "copy", "start": 0.5, "end": 1.0}
