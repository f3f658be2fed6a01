"""The landing page as a visitor meets it: landmarks, the signup form's error state, and no serious or
critical accessibility violation (axe-core) on either layout."""
from axe_playwright_python.sync_playwright import Axe

SERIOUS = {"serious", "critical"}


def serious_violations(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in SERIOUS]


def test_both_layouts_and_the_error_state_pass_axe(landing_stack, page):
    stack = landing_stack
    found = {}
    for variant, layout in (("A", "centered"), ("B", "split")):
        page.goto(f"{stack.landing.url}/?force_variant=landing:{variant}")
        assert page.locator("body").get_attribute("class") == f"layout-{layout}"
        assert page.get_by_role("main").count() == 1
        found[layout] = serious_violations(page)
    page.goto(f"{stack.landing.url}/")
    fonts = page.evaluate("""[...document.querySelectorAll('body, #email, #signup-form button')]
                             .map(e => getComputedStyle(e).fontFamily)""")
    assert len(set(fonts)) == 1  # form controls in the page's font
    field = page.get_by_label("Work email")
    field.fill("not-an-address")
    page.get_by_role("button", name="Sign up").click()
    page.locator("#form-feedback.error").wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    assert field.input_value() == "not-an-address"  # kept, to be corrected
    found["error"] = serious_violations(page)
    field.fill("someone@example.com")
    page.get_by_role("button", name="Sign up").click()
    page.locator("#form-feedback.success").wait_for()
    assert field.get_attribute("aria-invalid") is None
    assert {where: v for where, v in found.items() if v} == {}
