"""Environment -> typed settings, read once by each application factory."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORTS = {"landing": 8080, "ab_service": 5002, "metrics_service": 5001, "dashboard": 8081}
DEFAULT_MAX_BODY_BYTES = 256 * 1024


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _named_tokens(value: str) -> tuple[tuple[str, str], ...]:
    """ADMIN_TOKENS="alice:secret1,bob:secret2" -> (("alice", "secret1"), ("bob", "secret2"))."""
    pairs = []
    for item in _split(value):
        name, sep, token = item.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ValueError("ADMIN_TOKENS entries must look like name:token")
        pairs.append((name.strip(), token.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class Settings:
    service: str
    port: int
    database_url: str
    ab_service_url: str
    metrics_service_url: str
    admin_token: str
    named_tokens: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (name, token) from ADMIN_TOKENS
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    secret_key: str = ""
    rate_limit_visitor: str = "60/minute"
    rate_limit_ip: str = "600/minute"
    proxy_hops: int = 0
    outbox_max_backoff: float = 10.0

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DATA_DIR", "data"))
        default_db = f"sqlite:///{data_dir / (service + '.db')}"
        return cls(
            service=service,
            port=int(env.get("PORT", DEFAULT_PORTS.get(service, 8000))),
            database_url=env.get("DATABASE_URL", default_db),
            ab_service_url=env.get("AB_SERVICE_URL", "http://127.0.0.1:5002").rstrip("/"),
            metrics_service_url=env.get("METRICS_SERVICE_URL", "http://127.0.0.1:5001").rstrip("/"),
            admin_token=env.get("ADMIN_TOKEN", ""),
            named_tokens=_named_tokens(env.get("ADMIN_TOKENS", "")),
            cors_origins=_split(env.get("CORS_ORIGINS", "")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            data_dir=data_dir,
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            secret_key=env.get("SECRET_KEY", ""),
            rate_limit_visitor=env.get("RATE_LIMIT_VISITOR", "60/minute"),
            rate_limit_ip=env.get("RATE_LIMIT_IP", "600/minute"),
            proxy_hops=int(env.get("TRUSTED_PROXY_HOPS", "0")),
            outbox_max_backoff=float(env.get("OUTBOX_MAX_BACKOFF_SECONDS", "10")),
        )
