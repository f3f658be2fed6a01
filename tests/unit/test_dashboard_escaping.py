"""User-supplied text reaches the dashboard only through Streamlit's escaping widgets."""
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
UNSAFE = ["unsafe_allow_html", "st.html(", "components.html(", "st.markdown(", "st.write("]


@pytest.mark.parametrize("source", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: p.name)
def test_dashboard_never_renders_raw_html(source):
    text = source.read_text()
    for construct in UNSAFE:
        assert construct not in text, f"{source.name} uses {construct}"
