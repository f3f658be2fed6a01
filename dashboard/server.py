"""The dashboard's server: `streamlit run dashboard/server.py`.

Streamlit serves dashboard/app.py as usual; the one addition is middleware that gives each browser its
random id cookie (dashboard/cookie.py), which lets a signed-in admin stay signed in across reloads.
"""
import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.cookie import BrowserIdMiddleware  # noqa: E402

app = st.App(Path(__file__).with_name("app.py"), middleware=[Middleware(BrowserIdMiddleware)])
