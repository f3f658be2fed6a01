"""The dashboard's pages, one script per page (run by st.navigation in app.py), and what they share:
reading and writing through the API with the failure said plainly, and a message kept across the rerun
that follows a write."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from dashboard.api import Api, BackendError
from dashboard.formatting import event_type_order
from dashboard.text import plain

T = TypeVar("T")


def fetched(unavailable: str, call: Callable[..., T], *args: Any, show: Callable[[str], Any] | None = None,
            **kwargs: Any) -> T | None:
    """What call() answers; None after showing "<unavailable>: <why>" when a service did not answer (or
    asking to sign in when it answers only to a token). `show`: where to say it instead, for what the page
    does without (a caption)."""
    try:
        return call(*args, **kwargs)
    except BackendError as exc:
        if show is not None:
            show(f"{unavailable}: {plain(exc)}")
        elif exc.needs_sign_in:
            st.info(f"Sign in (sidebar) to see this: {plain(exc)}")
        else:
            st.error(f"{unavailable}: {plain(exc)}")
        return None


def event_type_filter(api: Api, where: Any, key: str) -> str:
    """The "Event type" filter in `where` (a column): All, the built-in types, then the registered ones
    (GET /event-types); the built-in ones alone, with a caption saying why, when the catalogue does not
    answer. The options show as plain text (Streamlit does not read them as Markdown)."""
    box, note = where.container(), where.container()  # the caption under the box
    listed = fetched("Only the built-in event types are listed", api.event_types, show=note.caption) or []
    return box.selectbox("Event type", ["All", *event_type_order(t["key"] for t in listed)], key=key)


def written(failed: str, call: Callable[..., Any], *args: Any) -> bool:
    """True when call() went through; False after showing "<failed>: <why>" when it did not."""
    try:
        call(*args)
    except BackendError as exc:
        st.error(f"{failed}: {plain(exc)}")
        return False
    return True


def open_results(experiment: str) -> None:
    """Go to the results page of an experiment (its URL names it: /results?experiment=<key>)."""
    st.session_state["results_experiment"] = experiment
    st.switch_page("views/results.py", query_params={"experiment": experiment})


FLASH_KEY = "_flash"


def flash(message: str, kind: str = "success") -> None:
    """A message to show at the top of the page after the rerun that follows a write (the rerun makes
    every list, heading and prompt show the state the write left)."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH_KEY, (None, None))
    if message:
        getattr(st, kind)(plain(message))
