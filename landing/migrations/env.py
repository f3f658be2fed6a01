from core.migrate import run_env
from landing.store import metadata

run_env(metadata)
