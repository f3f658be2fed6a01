from ab_service.store import metadata
from core.migrate import run_env

run_env(metadata)
