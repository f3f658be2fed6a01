"""Environment -> typed settings: the one configuration object of each service.

Each app factory takes a Settings (tests build one from an environment of their own, which replaces
the process environment, as flaskr's test config replaces the instance config) or reads the process
environment once; the app keeps it as `app.config["SETTINGS"]` (see core.web.settings()).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.roles import Role

DEFAULT_PORTS = {"landing": 8080, "ab_service": 5002, "metrics_service": 5001, "dashboard": 8081}
DEFAULT_MAX_BODY_BYTES = 256 * 1024
# Per ingest key (or admin token) and metrics_service worker: the landing service sends one request per
# batch of up to 500 events, so this lets through 10,000 events/s, more than one worker stores.
DEFAULT_RATE_LIMIT_INGEST = "1200/minute"
DEFAULT_CLIENT_KEY = "sdk-landing-lab"
DEFAULT_SEGMENT_VALUES = 200


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class NamedToken:
    name: str  # who acts, as the audit log shows it
    role: Role
    token: str = field(repr=False)


def _named_tokens(env: Mapping[str, str]) -> tuple[NamedToken, ...]:
    """Every token with its name and role: API_TOKENS="ann:viewer:secret1,bob:editor:secret2", the admin
    tokens of ADMIN_TOKENS="alice:secret3" and ADMIN_TOKEN (named "admin")."""
    tokens = []
    for item in _split(env.get("API_TOKENS", "")):
        name, role, token = (part.strip() for part in (item.split(":", 2) + ["", ""])[:3])
        if not name or not role or not token:
            raise ValueError("API_TOKENS entries must look like name:role:token")
        tokens.append(NamedToken(name, Role.parse(role), token))
    for item in _split(env.get("ADMIN_TOKENS", "")):
        name, sep, token = item.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ValueError("ADMIN_TOKENS entries must look like name:token")
        tokens.append(NamedToken(name.strip(), Role.ADMIN, token.strip()))
    if env.get("ADMIN_TOKEN", ""):
        tokens.append(NamedToken("admin", Role.ADMIN, env["ADMIN_TOKEN"]))
    secrets = [t.token for t in tokens]
    if len(set(secrets)) != len(secrets):
        raise ValueError("each token of API_TOKENS, ADMIN_TOKENS and ADMIN_TOKEN must be different")
    return tuple(tokens)


def _switch(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false")


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number of days") from exc
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


@dataclass(frozen=True)
class Settings:
    port: int
    database_url: str
    ab_service_url: str
    metrics_service_url: str
    tokens: tuple[NamedToken, ...] = field(default_factory=tuple)  # none: everything but public routes refused
    public_reads: bool = False  # the viewer's reads (stats, results, definitions) open to anyone
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "INFO"
    # the landing service
    rate_limit_visitor: str = "60/minute"
    rate_limit_ip: str = "600/minute"
    rate_limit_storage_uri: str = ""  # where limits are counted; empty: the service's own database
    proxy_hops: int = 0
    geoip_database: str = ""  # a MaxMind-format country database file; empty: no country in exposure contexts
    refresh_seconds: float = 1.0  # how often flags and experiments are fetched from ab_service; 0: never by itself
    outbox_autostart: bool = True  # deliver queued events from a background thread
    outbox_interval_seconds: float = 0.5
    outbox_max_backoff: float = 10.0
    ingest_key: str = ""  # what POST /events and POST /assignments require; what the landing service sends
    ab_service_token: str = ""  # a viewer-or-better token the landing service reads flags and experiments with
    metrics_service_token: str = ""  # a viewer-or-better token ab_service reads readouts with (ADMIN_TOKEN if unset)
    rate_limit_ingest: str = DEFAULT_RATE_LIMIT_INGEST
    segment_values: int = DEFAULT_SEGMENT_VALUES  # distinct values kept per context dimension, then "(other)"
    # ab_service: the client key of GET /api/features/<client key> (GrowthBook SDKs); empty: no payload served
    growthbook_client_key: str = DEFAULT_CLIENT_KEY
    jobs_autostart: bool = True  # ab_service: run the scheduler and the webhook sender in each worker
    jobs_interval_seconds: float = 5.0  # how often they look for due transitions and deliveries
    alerts_check_seconds: float = 60.0  # how often the running experiments' readouts are checked (all workers)
    no_data_hours: float = 24.0  # no_data: a running experiment without exposures this long; 0: never
    webhook_timeout_seconds: float = 10.0
    webhook_max_backoff_seconds: float = 3600.0
    data_dir: Path = Path("data")
    secret_key: str = ""  # signs the landing service's assignment cookie; unset: one kept in data_dir
    # metrics_service: raw events older than this many days are deleted daily; 0 keeps them forever
    event_retention_days: int = 0
    retention_check_seconds: float = 3600.0  # how often each worker looks whether the daily run is due
    # the dashboard
    landing_url: str = "http://127.0.0.1:8080"  # where variant preview links point
    admin_session_hours: float = 12.0  # how long a signed-in admin stays signed in across reloads

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of `service` from `environ` (the process environment by default)."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DATA_DIR", "data"))
        return cls(
            port=int(env.get("PORT", DEFAULT_PORTS.get(service, 8000))),
            database_url=env.get("DATABASE_URL", f"sqlite:///{data_dir / (service + '.db')}"),
            ab_service_url=env.get("AB_SERVICE_URL", "http://127.0.0.1:5002").rstrip("/"),
            metrics_service_url=env.get("METRICS_SERVICE_URL", "http://127.0.0.1:5001").rstrip("/"),
            tokens=_named_tokens(env),
            public_reads=_switch("PUBLIC_READS", env.get("PUBLIC_READS", "false")),
            cors_origins=_split(env.get("CORS_ORIGINS", "")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            rate_limit_visitor=env.get("RATE_LIMIT_VISITOR", "60/minute"),
            rate_limit_ip=env.get("RATE_LIMIT_IP", "600/minute"),
            rate_limit_storage_uri=env.get("RATE_LIMIT_STORAGE_URI", ""),
            proxy_hops=int(env.get("TRUSTED_PROXY_HOPS", "0")),
            geoip_database=env.get("GEOIP_DATABASE", "").strip(),
            refresh_seconds=float(env.get("REFRESH_SECONDS", "1")),
            outbox_autostart=_switch("OUTBOX_AUTOSTART", env.get("OUTBOX_AUTOSTART", "true")),
            outbox_interval_seconds=float(env.get("OUTBOX_INTERVAL_SECONDS", "0.5")),
            outbox_max_backoff=float(env.get("OUTBOX_MAX_BACKOFF_SECONDS", "10")),
            ingest_key=env.get("INGEST_KEY", "").strip(),
            ab_service_token=env.get("AB_SERVICE_TOKEN", "").strip(),
            metrics_service_token=(env.get("METRICS_SERVICE_TOKEN", "").strip() or env.get("ADMIN_TOKEN", "")),
            rate_limit_ingest=env.get("RATE_LIMIT_INGEST", DEFAULT_RATE_LIMIT_INGEST),
            segment_values=int(env.get("SEGMENT_VALUES", DEFAULT_SEGMENT_VALUES)),
            growthbook_client_key=env.get("GROWTHBOOK_CLIENT_KEY", DEFAULT_CLIENT_KEY).strip(),
            jobs_autostart=_switch("JOBS_AUTOSTART", env.get("JOBS_AUTOSTART", "true")),
            jobs_interval_seconds=float(env.get("JOBS_INTERVAL_SECONDS", "5")),
            alerts_check_seconds=float(env.get("ALERTS_CHECK_SECONDS", "60")),
            no_data_hours=float(env.get("NO_DATA_HOURS", "24")),
            webhook_timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
            webhook_max_backoff_seconds=float(env.get("WEBHOOK_MAX_BACKOFF_SECONDS", "3600")),
            data_dir=data_dir,
            secret_key=env.get("SECRET_KEY", "").strip(),
            event_retention_days=_non_negative("EVENT_RETENTION_DAYS", env.get("EVENT_RETENTION_DAYS", "") or "0"),
            retention_check_seconds=float(env.get("RETENTION_CHECK_SECONDS", "3600")),
            landing_url=env.get("LANDING_URL", "http://127.0.0.1:8080").rstrip("/"),
            admin_session_hours=float(env.get("ADMIN_SESSION_HOURS", "12")),
        )
