from core.migrate import run_env
from landing.outbox import metadata

run_env(metadata)
