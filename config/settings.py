"""Typed settings read from the environment (prefix ``SUPERAPP_``) and an optional ``.env`` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-this-built-in-secret-is-public"
DEFAULT_DATABASE_URL = "sqlite:///./var/superapp.db"


class SettingsError(RuntimeError):
    """Raised when the configuration cannot be used; the message names the setting."""


class Settings(BaseSettings):
    """Everything an operator can configure, with the embedded defaults a demo needs."""

    model_config = SettingsConfigDict(
        env_prefix="SUPERAPP_", env_file=".env", extra="ignore", validate_default=True
    )

    # Production unless said otherwise: only an explicit ``dev`` accepts the public placeholder secret and
    # opens the development sign-in (`superapp serve --demo` and `superapp seed demo` set it for themselves).
    env: Literal["dev", "test", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    # Unset means the in-process broker: one worker only.
    redis_url: str | None = None
    # Comma-separated mini-app ids; unset loads every mini-app found.
    miniapps: Annotated[list[str] | None, NoDecode] = None
    # Mini-app ids never loaded, even when found (applied after the allowlist).
    miniapps_disabled: Annotated[list[str], NoDecode] = Field(default_factory=list)
    secret_key: str = DEFAULT_SECRET_KEY
    locale: Literal["vi", "en"] = "vi"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # Built-in mini-apps are discovered from this package; tests may point elsewhere.
    builtin_miniapps_package: str = "miniapps"
    # Whether the host also looks at the ``superapp.miniapps`` entry points.
    load_entry_points: bool = True
    scheduler_enabled: bool = True
    var_dir: Path = Path("./var")
    # Residents sign in with Firebase Authentication (phone); unset project = Firebase sign-in off.
    firebase_project_id: str | None = None
    firebase_credentials: Path | None = None  # service account JSON, needed for revocation checks
    firebase_check_revoked: bool = False
    # The Firebase web app's public config for phone sign-in on /auth/phone (not secrets; both from
    # the Firebase console). Without the API key the web page offers only the development code.
    firebase_web_api_key: str | None = None
    firebase_web_auth_domain: str | None = None  # default <project id>.firebaseapp.com
    # The emulator switch turns signature checks off: for local development only.
    firebase_auth_emulator_host: str | None = None
    # Push through FCM needs both SUPERAPP_FIREBASE_PROJECT_ID and SUPERAPP_FIREBASE_CREDENTIALS;
    # without them notifications are only logged. The outbox worker runs in every serving process
    # (off here when `superapp push worker` runs it elsewhere); workers never send one row twice at once.
    # WebSocket heartbeats and the per-connection send queue (a client further behind is dropped).
    ws_heartbeat_seconds: float = Field(25.0, gt=0, le=300)
    ws_queue_size: int = Field(256, ge=8, le=100_000)
    # Seconds a worker reuses a rendered feed page (never past an item's expiry; publishing clears it).
    feed_cache_seconds: float = Field(2.0, ge=0, le=60)
    # The one search box waits this long for all mini-apps' providers; late ones are reported, not awaited.
    search_budget_seconds: float = Field(1.5, gt=0, le=30)
    # Map pages: the tile server Leaflet draws under the layers ({z}/{x}/{y}); empty = no base map.
    map_tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    # Uploaded photos and attachments: where the local store keeps them (under var_dir by default).
    media_dir: Path | None = None
    media_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    # Request bodies on every route, counted as they stream in (413 past it, read no further). Upload
    # routes allow their files to a signed-in caller only (core/limits.py, docs/operations.md).
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    push_worker_enabled: bool = True
    # How long a worker holds a claimed outbox row; renewed while it sends, taken over when it dies.
    push_lease_seconds: float = Field(60.0, gt=0, le=3600)
    # Outbox rows (each up to 500 tokens) one worker sends at once.
    push_batch_size: int = Field(2, ge=1, le=64)
    # Sends of one row before it is marked dead; retries back off exponentially (with jitter) from
    # the base up to the maximum, and never come sooner than FCM's Retry-After.
    push_max_attempts: int = Field(10, ge=1, le=100)
    push_retry_base_seconds: float = Field(1.0, gt=0)
    push_retry_max_seconds: float = Field(900.0, gt=0)
    # How often an idle worker looks for due rows (a notification committed here wakes it at once).
    push_poll_seconds: float = Field(0.5, gt=0, le=60)
    # Officials' sign-in (core/identity/ratelimit.py): past a few free failures per account (5) and per
    # address (20), each attempt waits a delay doubling from 1 s up to this cap (429 with Retry-After); a
    # browser or app that signed in to the account before is not delayed by other clients' failures.
    sign_in_backoff_cap_seconds: float = Field(900.0, ge=1, le=86_400)
    # Failures on one account or address that log a warning and notify operators (once an hour per
    # account or address, one notice per 15 minutes for the city).
    sign_in_alert_failures: int = Field(20, ge=5, le=100_000)
    # Seconds a verified caller is reused before the database is asked again; revocations are
    # broadcast to every worker at once, so this only bounds a missed broadcast.
    auth_cache_seconds: float = Field(5.0, ge=0, le=60)
    # Seconds a worker may reuse a person's inbox first page and badge (push.inbox_cache); every change
    # that reaches them discards it at once, so this only bounds a change note lost in a broker outage.
    # 0 reads the database on every request.
    inbox_cache_seconds: float = Field(30.0, ge=0, le=600)
    # PostgreSQL connections each process keeps open, and how many more it may open at a busy moment.
    # A request beyond the kept ones opens (and closes) a connection of its own, so keep about as many
    # as requests run at once (the thread pool runs 40); workers x (size + overflow) must stay under the
    # server's max_connections (100 by default). See docs/operations.md.
    database_pool_size: int = Field(20, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)
    # Retention (core.retention, daily job and `superapp retention run`): rows older than these many
    # days are deleted in batches of SUPERAPP_RETENTION_BATCH_SIZE, one short transaction each.
    retention_enabled: bool = True
    retention_batch_size: int = Field(5000, ge=100, le=50_000)
    # Personal inbox items, and notifications themselves (their audiences and remaining inbox rows
    # go with them, so a notification is kept at least as long as an inbox item).
    retention_inbox_days: int = Field(180, ge=7, le=3650)
    retention_notification_days: int = Field(365, ge=30, le=3650)
    # Push outbox rows that were sent or gave up (pending rows are never deleted).
    retention_outbox_days: int = Field(14, ge=1, le=365)
    # The audit log is evidence: at least a year, two by default.
    retention_audit_days: int = Field(730, ge=365, le=3650)
    # Sessions and refresh tokens this long after they expired or were revoked; sign-in codes after expiry.
    retention_session_days: int = Field(30, ge=1, le=365)
    # Finished runs of scheduled jobs (the latest run of each job is always kept: it holds the claim).
    retention_job_run_days: int = Field(30, ge=1, le=3650)
    # Web mini-apps' daily usage rows (their analytics show 90 days, so never fewer).
    retention_webapp_usage_days: int = Field(90, ge=90, le=3650)
    # Extra origins allowed to send cookie-authenticated writes (the host's own is always allowed).
    trusted_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Hardening (core/security.py, docs/operations.md "Security"). The site's public address, e.g.
    # https://hue-s.example.vn: absolute links in CAP, Open311 and SensorThings answers use it, never the Host header.
    public_url: str | None = None
    # Host names the server answers to (others get 400); empty = any host (development only).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Proxy addresses/networks whose X-Forwarded-Proto/-For are believed (decides HTTPS: HSTS, Secure cookies).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Outside web mini-app origins pages may frame (CSP frame-src); empty = only this site.
    frame_sources: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Web mini-apps' signing keys (core/webapps/tokens.py): the generation of the current key; raise it by one
    # to rotate (the previous generation stays published in /.well-known/jwks.json until the next rotation).
    webapp_key_generation: int = Field(default=1, ge=1)
    # Bearer token Prometheus sends for /metrics; unset = /metrics is off in production, open otherwise.
    metrics_token: str | None = None

    @field_validator("public_url")
    @classmethod
    def _an_origin(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("https://", "http://")) or "/" in value.split("://", 1)[1].rstrip("/"):
            raise ValueError("must be an origin like https://hue-s.example.vn (scheme and host, no path)")
        return value.rstrip("/")

    @field_validator("miniapps", "miniapps_disabled", "trusted_origins", "allowed_hosts", "trusted_proxies",
                     "frame_sources", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                "must start with sqlite:// or postgresql:// (for example postgresql://user@host/db)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if len(value) < 32:
            raise ValueError("must be at least 32 characters long (it signs tokens with HMAC-SHA256)")
        return value

    @model_validator(mode="after")
    def _production_needs_a_secret(self) -> Settings:
        if self.env != "dev" and self.secret_key == DEFAULT_SECRET_KEY:
            # The placeholder is public: anyone could sign tokens with it. Only an explicit dev is spared.
            raise ValueError(
                "SUPERAPP_SECRET_KEY is the built-in default, which is public; set a random secret of at least "
                "32 characters (openssl rand -hex 32), or SUPERAPP_ENV=dev for local development"
            )
        if self.env == "production" and (
            self.firebase_auth_emulator_host or os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
        ):
            raise ValueError(
                "SUPERAPP_FIREBASE_AUTH_EMULATOR_HOST turns Firebase signature checks off; "
                "it is refused in production"
            )
        if self.retention_notification_days < self.retention_inbox_days:
            raise ValueError(
                f"SUPERAPP_RETENTION_NOTIFICATION_DAYS ({self.retention_notification_days}) must be at least "
                f"SUPERAPP_RETENTION_INBOX_DAYS ({self.retention_inbox_days}): inbox items go with their notification"
            )
        if self.firebase_check_revoked and not self.firebase_credentials:
            raise ValueError(
                "SUPERAPP_FIREBASE_CHECK_REVOKED needs SUPERAPP_FIREBASE_CREDENTIALS (a service account)"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver SQLAlchemy should use."""
        if self.database_url.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.database_url[len("postgresql://") :]
        return self.database_url


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one message that names each bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            name = f"SUPERAPP_{field.upper()}" if error["loc"] else "settings"
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
