"""User text reaches the dashboard as plain text: hostile flag descriptions, flag values, experiment
descriptions and variant names are rendered (AppTest, real backends) and every text Streamlit shows as
Markdown (labels, help tooltips, headings, alerts) is checked to make no markup at all, and to show the
user's text as it was written."""
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.formatting import MAX_LABEL
from dashboard.text import plain
from tests.helpers import (
    ADMIN_TOKEN,
    markdown_sources,
    markup,
    open_view,
    post_events,
    raw_html_allowed,
    register_event_types,
    shown,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PIXEL = "![pixel](https://tracker.example/p.png)"
DESCRIPTION = (f"{PIXEL} **bold** _it_ <img src=https://tracker.example/i.png onerror=alert(1)> "
               "[link](javascript:alert(1)) <https://tracker.example> www.tracker.example :red[red] "
               ":material/home: $x^2$ `code` &lt;b&gt; ~~gone~~ \\* a | b\n# heading\n- item\n    indented code")
VALUE = "<script>alert(1)</script> **Buy** ![x](https://tracker.example/v.png)"
VIEWS = ["Overview", "Stats", "Traffic", "Experiment results", "Explore", "Feature toggles", "Experiments",
         "Audit log"]
SOURCE = "**x** ![y](https://tracker.example/u.png) <b>"  # a campaign word as a sender may write it
EVENT_TYPE = "__order__"  # a registered event type: the key pattern allows Markdown's emphasis


@pytest.fixture
def hostile(backends):
    """Backends holding user text written to break out: a flag, a flag value, an experiment and its events."""
    ab, metrics = backends
    for method, path, body in [
        ("post", "/flags", {"key": "hostile_note", "type": "string", "value": VALUE, "description": DESCRIPTION}),
        ("post", "/config", {"cta_text": VALUE, "hero_headline": PIXEL}),
        ("patch", "/flags/accent_color", {"description": DESCRIPTION}),
        ("post", "/experiments", {"key": "_x_", "description": DESCRIPTION, "status": "running",
                                  "variants": [{"name": "__a__", "weight": 0.5}, {"name": "_b_", "weight": 0.5}]}),
    ]:
        requests.request(method, ab.url + path, json=body, headers=ADMIN, timeout=5).raise_for_status()
    # 150 visitors per arm; _b_ converts three times as often, so the verdict names both variants.
    visits = [(f"v{i}", ["__a__", "_b_"][i % 2]) for i in range(300)]
    events = [{"visitor_id": v, "variant": variant, "experiment": "_x_", "event_type": "page_view",
               "context": {"utm_source": SOURCE, "device": "mobile"}} for v, variant in visits]
    events += [{"visitor_id": v, "variant": variant, "experiment": "_x_", "event_type": "form_submit"}
               for n, (v, variant) in enumerate(visits) if n % (4 if variant == "_b_" else 10) < 2]
    register_event_types(metrics, EVENT_TYPE, description=DESCRIPTION)
    events += [{"visitor_id": v, "variant": variant, "experiment": "_x_", "event_type": EVENT_TYPE}
               for v, variant in visits[:3]]
    post_events(metrics, events)
    return backends


def lines(text: str) -> list[str]:
    """Text as a reader compares it: its non-blank lines, without the white space around them (which
    Markdown does not keep)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    return [line.strip(SPACE) for line in text.split("\n") if line.strip(SPACE)]


SPACE = " \t\x0b\x0c"


def assert_plain(at):
    """Nothing the app shows as Markdown makes markup (its own dividers aside), and nothing lets raw HTML
    through."""
    assert not at.exception, [e.value for e in at.exception]
    made = {(where, source): markup(source) for where, source in markdown_sources(at)
            if not where.startswith("Divider.")}
    assert not {k: v for k, v in made.items() if v}, "Markdown made markup of user text"
    assert raw_html_allowed(at) == []


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("admin", [False, True], ids=["reader", "admin"])
def test_every_view_shows_user_text_as_plain_text(hostile, view, admin):
    at = open_view(view, token=ADMIN_TOKEN if admin else None)
    assert_plain(at)
    if view == "Experiment results":
        at.selectbox(key="results_experiment").set_value("_x_").run()
        assert_plain(at)
        assert any(shown(s.value).startswith("_b_ beats __a__") for s in at.success), [s.value for s in at.success]
        at.selectbox(key="results_dimension").set_value("Source (utm_source)").run()
        assert_plain(at)
        assert list(at.dataframe[1].value["Segment"]) == [SOURCE, SOURCE]
    if view == "Traffic":
        assert list(at.dataframe[0].value["Value"]) == [SOURCE]
    if view in ("Stats", "Explore"):
        at.text_input(key=f"{view.lower()}_experiment").input("_x_").run()
        assert at.selectbox(key=f"{view.lower()}_event_type").options[-1] == EVENT_TYPE
        at.selectbox(key=f"{view.lower()}_event_type").set_value(EVENT_TYPE).run()
        if view == "Explore":  # the variants picked while the experiment had none are kept: pick them
            at.multiselect(key="explore_variants").set_value(["__a__", "_b_"]).run()
        assert_plain(at)
        table = at.dataframe[0].value
        assert table["Events"].sum() == 3
        if view == "Stats":
            assert set(table["Event type"]) == {EVENT_TYPE}
    if view == "Stats":
        at.text_input(key="stats_experiment").input("**nothing** ![x](https://tracker.example/s.png)").run()
        assert_plain(at)
        assert any("'**nothing** ![x](https://tracker.example/s.png)'" in shown(i.value) for i in at.info)


def test_a_flag_description_is_shown_as_written_in_its_tooltip(hostile):
    at = open_view("Feature toggles", token=ADMIN_TOKEN)
    for widget in (at.text_input(key="text_hostile_note"), at.color_picker(key="color_accent_color")):
        assert markup(widget.help) == set()
        assert lines(shown(widget.help))[:-1] == lines(DESCRIPTION)  # then the flag's key and type
        assert PIXEL in shown(widget.help) and "**bold** _it_" in shown(widget.help)
        assert markup(widget.label) == set()
        assert shown(widget.label) == lines(DESCRIPTION)[0][:MAX_LABEL - 1].rstrip() + "…"  # the first line
    assert at.text_input(key="text_hostile_note").value == VALUE


def test_an_experiment_key_is_shown_as_written(hostile):
    at = open_view("Experiments", token=ADMIN_TOKEN)
    at.selectbox(key="edit_choice").set_value("_x_").run()
    [heading] = [h for h in at.subheader if "running" in h.value]
    assert markup(heading.value) == set() and shown(heading.value) == "_x_ · running"
    at.button(key="ask_status").click().run()
    [question] = at.warning
    assert markup(question.value) == set() and shown(question.value).startswith("Stop experiment '_x_'?")


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80))
def test_plain_text_shows_as_written(text):
    """Any text through plain() renders as itself: no markup, the same characters."""
    assert markup(plain(text)) == set()
    assert lines(shown(plain(text))) == lines(text)
