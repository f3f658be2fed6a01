"""Development server: python -m metrics_service (production runs under gunicorn)."""
from core.settings import Settings
from core.web import configure_logging, run_dev_server
from metrics_service import create_app

if __name__ == "__main__":
    settings = Settings.from_env("metrics_service")
    configure_logging(settings.log_level)
    run_dev_server(create_app(settings), settings.port)
