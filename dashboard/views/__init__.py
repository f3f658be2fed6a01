"""One module per dashboard view; each exposes render(api, ...) and only lays out widgets. Text from a
user or a service goes through dashboard.text.plain wherever Streamlit renders Markdown."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from dashboard.api import BackendError
from dashboard.text import plain

T = TypeVar("T")


def fetched(unavailable: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """What call() answers; None after showing "<unavailable>: <why>" when a service did not answer."""
    try:
        return call(*args, **kwargs)
    except BackendError as exc:
        st.error(f"{unavailable}: {plain(exc)}")
        return None


def written(failed: str, call: Callable[..., Any], *args: Any) -> bool:
    """True when call() went through; False after showing "<failed>: <why>" when it did not."""
    try:
        call(*args)
    except BackendError as exc:
        st.error(f"{failed}: {plain(exc)}")
        return False
    return True
