"""Development server: python -m metrics_service (production runs under gunicorn)."""
import os

from core.settings import Settings
from core.web import configure_logging
from metrics_service import create_app

if __name__ == "__main__":
    settings = Settings.from_env("metrics_service")
    configure_logging(settings.log_level)
    create_app().run(host=os.environ.get("HOST", "127.0.0.1"), port=settings.port, threaded=True)
