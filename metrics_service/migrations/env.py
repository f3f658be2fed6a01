from core.migrate import run_env
from metrics_service.store import metadata

run_env(metadata)
