"""The HTTP ceiling: trivial JSON endpoints served by the same gunicorn configuration as the services."""
from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/events")
    def events():
        return {"accepted": 1, "duplicates": 0}, 202

    @app.get("/assign")
    def assign():
        return {"variant": "A"}

    @app.get("/")
    def page():
        return "<!doctype html><title>ceiling</title><body data-variant=A></body>"

    return app
