"""Development server: python -m ab_service (production runs under gunicorn)."""
from ab_service import create_app
from core.settings import Settings
from core.web import configure_logging, run_dev_server

if __name__ == "__main__":
    settings = Settings.from_env("ab_service")
    configure_logging(settings.log_level)
    run_dev_server(create_app(settings), settings.port)
