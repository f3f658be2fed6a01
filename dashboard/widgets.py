"""Widgets more than one page uses: a flag's value edited with the widget that fits its type, and the
contrast check of an accent colour."""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.flags import ACCENT_TEXT_COLOR, MAX_STRING
from dashboard.formatting import AA_TEXT, contrast_ratio


def is_integer(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def flag_widget(flag: dict[str, Any], key: str, label: str, value: Any = None, disabled: bool = False,
                help_text: str | None = None) -> Any:
    """The widget that fits the flag's type, showing `value` (the flag's own value by default): a toggle,
    a number input that keeps whole numbers whole, a colour picker, a selectbox of the allowed values or
    a text input."""
    kind = flag["type"]
    value = flag["value"] if value is None else value
    if kind == "boolean":
        return st.toggle(label, value=bool(value), key=f"toggle_{key}", help=help_text, disabled=disabled)
    if kind == "number":
        if is_integer(value):
            return st.number_input(label, value=int(value), step=1, key=f"number_{key}", help=help_text,
                                   disabled=disabled)
        return st.number_input(label, value=float(value), key=f"number_{key}", help=help_text, disabled=disabled)
    if kind == "color":
        return st.color_picker(label, value=value, key=f"color_{key}", help=help_text, disabled=disabled)
    allowed = flag.get("allowed")
    if allowed:
        options = list(allowed) if value in allowed else [value, *allowed]
        return st.selectbox(label, options, index=options.index(value), key=f"select_{key}", help=help_text,
                            disabled=disabled)
    return st.text_input(label, value=str(value), key=f"text_{key}", max_chars=MAX_STRING, help=help_text,
                         disabled=disabled)


def contrast_warning(color: str) -> None:
    """A warning under a colour the page writes white text on, when that text would fail WCAG AA."""
    ratio = contrast_ratio(color, ACCENT_TEXT_COLOR)
    if ratio < AA_TEXT:
        st.warning(f"White text on {color} has a contrast of {ratio:.1f}:1; WCAG AA asks for at least "
                   f"{AA_TEXT:g}:1. Choose a darker colour so the button text stays readable.",
                   icon=":material/contrast:")
