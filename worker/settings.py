"""Typed settings: environment, a `.env` file and `/run/secrets/*`, validated at start.

Names fixed by DESIGN.md (`DATABASE_URL`, `REDIS_URL`, ...) are read as they are;
every other knob is `HERALD_<FIELD>`. A bad value raises `SettingsError` whose
problems each name the variable and what is wrong with it; the CLI and the Celery
app turn that into exit status 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from worker import runtime
from worker.errors import ConfigurationError

#: Docker and Kubernetes mount secrets here; a file's name is the variable's name.
SECRETS_DIR = Path("/run/secrets")

_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_BROKER_SCHEMES = {"redis", "rediss", "amqp", "amqps", "pyamqp"}
_SANDBOX = "http://127.0.0.1:8765"


class SettingsError(ConfigurationError):
    """One or more settings are wrong; `problems` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _contract(name: str, default: Any = None, **kw: Any) -> Any:
    """A field whose environment name is fixed by the design, not prefixed."""
    return Field(default, validation_alias=name, **kw)


class Settings(BaseSettings):
    """Every knob Herald reads. The README's configuration table is generated from this."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    env: Literal["development", "staging", "production"] = Field(
        "development",
        description="development | staging | production. Production refuses embedded servers, "
        "missing TOKEN_ENCRYPTION_KEYS, Flower without FLOWER_BASIC_AUTH, non-JSON serializers.",
    )
    database_url: str | None = _contract(
        "DATABASE_URL", description="PostgreSQL URL; unset: embedded PostgreSQL (not production)."
    )
    redis_url: str | None = _contract(
        "REDIS_URL", description="Redis for coordination (and the broker unless BROKER_URL)."
    )
    broker_url: str | None = _contract("BROKER_URL", description="redis://… or amqp://…")
    instagram_api_url: str = _contract(
        "INSTAGRAM_API_URL", f"{_SANDBOX}/instagram", description="Instagram Graph API base URL."
    )
    facebook_api_url: str = _contract(
        "FACEBOOK_API_URL", f"{_SANDBOX}/facebook", description="Facebook Graph API base URL."
    )
    youtube_api_url: str = _contract(
        "YOUTUBE_API_URL", f"{_SANDBOX}/youtube", description="YouTube Data API base URL."
    )
    token_encryption_keys: SecretStr | None = _contract(
        "TOKEN_ENCRYPTION_KEYS", description="Comma-separated Fernet keys, newest first."
    )
    backup_dir: Path = _contract(
        "BACKUP_DIR", Path(".herald/backups"), description="Backups and archive exports."
    )
    flower_basic_auth: SecretStr | None = _contract(
        "FLOWER_BASIC_AUTH", description="user:password for Flower."
    )
    sentry_dsn: SecretStr | None = _contract(
        "SENTRY_DSN", description="Sentry DSN; unset: Sentry off."
    )

    home: Path = Field(Path(".herald"), description="Where embedded servers keep their data.")
    namespace: str = Field(
        "herald",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of every Redis key (broker included): several Heralds, one Redis.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level logged."
    )
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: console in development, JSON elsewhere."
    )
    accept_content: Annotated[list[str], NoDecode] = Field(
        ["json"], description="Serializers workers accept; production allows only json."
    )
    db_pool_size: int = Field(5, ge=1, le=100, description="Pooled connections per process.")
    db_max_overflow: int = Field(
        5, ge=0, le=100, description="Extra connections a process may open past the pool."
    )
    db_pool_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a pooled conn.")
    db_connect_timeout: int = Field(5, ge=1, le=120, description="Seconds to open a connection.")
    db_statement_timeout_ms: int = Field(30_000, ge=100, description="Per-statement limit.")
    visibility_timeout: int = Field(
        600,
        ge=60,
        description="Redis broker: seconds before an unacked message is redelivered. Must "
        "exceed the longest task and ETA (kombu#337).",
    )
    soft_shutdown_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight tasks get to finish after SIGTERM."
    )
    http_connect_timeout: float = Field(3.0, gt=0, description="Seconds to connect to a platform.")
    http_read_timeout: float = Field(10.0, gt=0, description="Seconds to wait for its answer.")
    heartbeat_interval: int = Field(
        10, ge=1, description="Seconds between beat heartbeats (readiness: beat is alive)."
    )
    dispatch_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between dispatcher runs (beat)."
    )
    dispatch_lookahead: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Posts due within this many seconds are queued with an ETA; keep it far "
        "below HERALD_VISIBILITY_TIMEOUT.",
    )
    dispatch_batch_size: int = Field(1000, ge=1, le=20_000, description="Rows claimed per batch.")
    dispatch_threads: int = Field(
        2, ge=1, le=8, description="Claimers in one dispatcher run (overlap DB and Redis work)."
    )
    queued_lease: int = Field(
        300,
        ge=10,
        description="Seconds after its time a queued post whose message never ran is re-sent.",
    )
    publish_time_limit: int = Field(
        60,
        ge=5,
        le=600,
        description="Hard time limit of one publish (soft limit 10 s earlier, never before "
        "3/4 of it); the row's "
        "lease lasts 15 s longer, so no two workers ever hold it.",
    )
    publish_max_attempts: int = Field(6, ge=1, le=50, description="Attempts before dead.")
    retry_base_delay: float = Field(2.0, gt=0, description="First retry's backoff cap (s).")
    retry_max_delay: float = Field(300.0, gt=0, description="Largest retry backoff (s).")
    rate_limits: bool = Field(
        True, description="Global rate limits on (off: admit everything; benchmarks, tests)."
    )
    breakers: bool = Field(True, description="Circuit breakers on (off: benchmarks only).")
    breaker_fail_max: int = Field(5, ge=1, description="Consecutive transient failures to open.")
    breaker_reset_timeout: float = Field(30.0, gt=0, description="Seconds open before a probe.")
    max_deliveries: int = Field(
        5, ge=1, description="Deliveries of one message (worker lost each time) before dead."
    )
    posts_workers: int = Field(1, ge=1, le=32, description="Worker processes `herald run` starts.")
    posts_concurrency: int = Field(4, ge=1, le=256, description="Pool size of each posts worker.")
    past_grace: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="A post may be scheduled this many seconds in the past (published at once); "
        "older times are refused.",
    )

    beat_lock_timeout: int = Field(
        30,
        ge=5,
        le=3600,
        description="Seconds a beat's leadership lock lives: a standby beat takes over this "
        "long after the active one died.",
    )

    # Maintenance (beat): token refresh, backups, archival.
    token_refresh_interval: float = Field(
        300.0, ge=1, description="Seconds between sweeps for tokens about to expire (beat)."
    )
    token_refresh_window: int = Field(
        86_400,
        ge=60,
        description="Tokens expiring within this many seconds are refreshed. Tokens that live "
        "shorter than twice the window (Google's hour) are refreshed at half their life.",
    )
    meta_app_id: str | None = Field(
        None, description="Meta app id for the Graph token exchange (Facebook, Instagram)."
    )
    meta_app_secret: SecretStr | None = Field(None, description="Meta app secret.")
    google_client_id: str | None = Field(
        None, description="Google OAuth client id (YouTube token refresh)."
    )
    google_client_secret: SecretStr | None = Field(None, description="Google OAuth client secret.")
    google_token_url: str | None = Field(
        None,
        description="Google's token endpoint (default: {YOUTUBE_API_URL}/token, the sandbox's; "
        "production: https://oauth2.googleapis.com/token).",
    )
    backup_schedule: str = Field(
        "30 3 * * *", description="Crontab (UTC) of the nightly backup: minute hour dom month dow."
    )
    backup_keep_daily: int = Field(7, ge=0, le=366, description="Daily backups kept (GFS).")
    backup_keep_weekly: int = Field(4, ge=0, le=520, description="Weekly backups kept (GFS).")
    backup_keep_monthly: int = Field(6, ge=0, le=240, description="Monthly backups kept (GFS).")
    backup_verify: bool = Field(
        True, description="Restore each new backup into a scratch database and compare counts."
    )
    backup_encryption_key: SecretStr | None = Field(
        None, description="Fernet key: backups are encrypted at rest when set."
    )
    pg_bin_dir: Path | None = Field(
        None,
        description="Directory holding pg_dump/pg_restore (default: the embedded server's, "
        "else the newest on PATH or under /usr/lib/postgresql).",
    )
    archive_schedule: str = Field("15 4 * * *", description="Crontab (UTC) of archival.")
    archive_after_days: int = Field(
        90, ge=1, description="Finished posts older than this move to scheduled_posts_archive."
    )
    attempts_retention_months: int = Field(
        3, ge=1, le=120, description="Monthly post_attempts partitions kept before export+drop."
    )
    partitions_ahead: int = Field(
        3, ge=1, le=24, description="Future monthly post_attempts partitions kept created."
    )
    archive_batch_size: int = Field(
        10_000, ge=100, le=1_000_000, description="Rows moved per archival transaction."
    )

    # Operations: metrics, health, Sentry, Flower.
    metrics_port: int = Field(
        9808,
        ge=0,
        le=65535,
        description="First /metrics port: `herald run` gives each worker and beat the next "
        "one. 0: no metrics server.",
    )
    metrics_dir: Path | None = Field(
        None,
        description="prometheus_client multiprocess directory (default: a per-process-tree "
        "folder under HERALD_HOME).",
    )
    health_host: str = Field("127.0.0.1", description="Address `herald health --serve` binds.")
    health_port: int = Field(9800, ge=1, le=65535, description="Port of /healthz and /readyz.")
    ready_max_backlog: int = Field(
        50_000, ge=1, description="/readyz fails when a queue holds more messages than this."
    )
    ready_max_dead_letters: int = Field(
        1_000, ge=1, description="/readyz fails when more dead letters than this are open."
    )
    sentry_environment: str | None = Field(
        None, description="Sentry environment tag (default: HERALD_ENV)."
    )
    sentry_release: str | None = Field(
        None, description="Sentry release tag (default: herald@<version>)."
    )
    sentry_traces_sample_rate: float = Field(
        0.0, ge=0, le=1, description="Share of tasks traced in Sentry (0: errors only)."
    )
    flower: bool = Field(True, description="`herald run` starts Flower.")
    flower_host: str = Field("127.0.0.1", description="Address Flower binds.")
    flower_port: int = Field(5555, ge=1, le=65535, description="Port Flower listens on.")

    @field_validator("accept_content", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a URL; expected postgresql://user:password@host:5432/dbname"
            ) from None
        if url.drivername not in _PG_DRIVERS:
            raise ValueError(f"scheme {url.drivername!r} is not PostgreSQL; use postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _REDIS_SCHEMES, "redis://host:6379/0")

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _BROKER_SCHEMES, "redis://… or amqp://…")

    @field_validator("instagram_api_url", "facebook_api_url", "youtube_api_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        checked = _check_scheme(value, {"http", "https"}, "https://graph.facebook.com")
        assert checked is not None
        return checked.rstrip("/")

    @field_validator("token_encryption_keys")
    @classmethod
    def _check_fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("is empty; give one or more Fernet keys, newest first")
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                # The key itself is never echoed: it is a secret even when malformed.
                raise ValueError(
                    f"key #{position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                    "make one with `herald tokens new-key`)"
                ) from None
        return value

    @field_validator("backup_schedule", "archive_schedule")
    @classmethod
    def _check_crontab(cls, value: str) -> str:
        crontab_fields(value)
        return value

    @field_validator("backup_encryption_key")
    @classmethod
    def _check_backup_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value().strip())
            except ValueError:
                raise ValueError(
                    "is not a Fernet key (make one with `herald tokens new-key`)"
                ) from None
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _check_basic_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must be user:password")
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.database_url is None:
            problems.append(
                "DATABASE_URL: required in production (embedded PostgreSQL is dev-only)"
            )
        if self.redis_url is None:
            problems.append("REDIS_URL: required in production (embedded Redis is dev-only)")
        if self.token_encryption_keys is None:
            problems.append("TOKEN_ENCRYPTION_KEYS: required in production (tokens are encrypted)")
        if self.flower_basic_auth is None:
            problems.append("FLOWER_BASIC_AUTH: required in production (Flower must need a login)")
        if set(self.accept_content) != {"json"}:
            problems.append(
                "HERALD_ACCEPT_CONTENT: production accepts only json "
                "(pickle and yaml can run code sent by whoever reaches the broker)"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def effective_broker_url(self) -> str:
        """The broker: BROKER_URL, else the coordination Redis."""
        return self.broker_url or required_url(self, "redis_url")

    @property
    def broker_is_redis(self) -> bool:
        return urlsplit(self.effective_broker_url).scheme in _REDIS_SCHEMES

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.env != "development"
        return self.log_format == "json"

    @property
    def publish_soft_time_limit(self) -> int:
        """When a publish is asked to stop (SoftTimeLimitExceeded) before the hard kill."""
        return max(self.publish_time_limit - 10, self.publish_time_limit * 3 // 4)

    @property
    def publish_lease(self) -> int:
        """Seconds a publishing worker owns a row: past the hard limit, it is dead."""
        return self.publish_time_limit + 15

    @property
    def max_countdown(self) -> float:
        """The longest countdown a message may carry: beyond half the visibility timeout a
        Redis broker could redeliver it early (kombu#337), so longer waits are kept in the
        database and re-sent by the dispatcher."""
        return self.visibility_timeout / 2

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace."""
        return ":".join((self.namespace, *parts))


def crontab_fields(expression: str) -> tuple[str, str, str, str, str]:
    """minute hour day-of-month month day-of-week of a crontab line; each field is checked."""
    from celery.schedules import crontab

    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(
            f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        crontab(minute, hour, day_of_week, day_of_month, month)
    except ValueError as exc:
        raise ValueError(f"is not a valid crontab: {exc}") from None
    return minute, hour, day_of_month, month, day_of_week


def _check_scheme(value: str | None, schemes: set[str], example: str) -> str | None:
    if value is None:
        return None
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(f"has {shown}; expected {example}")
    return value


def env_name(field: str) -> str:
    """The environment variable a field is read from."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str) and field.lower() in (name, alias.lower()):
            return alias
    return f"HERALD_{field.upper()}"


def _describe(error: Any) -> list[str]:
    loc = error.get("loc") or ()
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:  # model-level checks already name their variables, one per line
        return message.splitlines()
    name = env_name(str(loc[0]))
    value = error.get("input")
    shown = "" if _is_secret(name) or isinstance(value, dict) else f" (got {value!r})"
    return [f"{name}: {message}{shown}"]


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("KEY", "AUTH", "DSN", "URL", "PASSWORD", "SECRET"))


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise `SettingsError` with one line per problem."""
    secrets_dir = SECRETS_DIR if SECRETS_DIR.is_dir() else None
    try:
        return Settings(_secrets_dir=secrets_dir, **overrides)
    except ValidationError as exc:
        problems = [line for error in exc.errors() for line in _describe(error)]
        raise SettingsError(problems) from None


#: What an unset URL means outside an entry point (`required_url` raises it).
_NO_EMBEDDED = (
    "unset (only `herald ...` and Celery's worker, beat and flower start the embedded "
    "servers; elsewhere set it)"
)


def _resolved_settings() -> Settings:
    """Settings whose unset URLs are the embedded servers' (see worker.runtime).

    Only a process an entry point marked (`runtime.use_embedded_servers()`) starts the
    servers. Anywhere else the URLs stay as set, possibly None: reading settings never
    spawns a database, and connecting without a URL fails in `required_url`.
    """
    settings = load_settings()
    if settings.database_url is not None and settings.redis_url is not None:
        return settings
    if not runtime.embedded_servers_allowed():
        return settings
    try:
        from worker.local import embedded  # only a bare development machine needs it
    except ImportError:
        raise SettingsError(
            [
                "DATABASE_URL / REDIS_URL: unset, and the embedded servers are not installed "
                "(pip install 'herald[embedded]', or set both URLs)"
            ]
        ) from None
    urls = embedded.ensure_running(settings.home)
    return settings.model_copy(
        update={
            "database_url": settings.database_url or urls.database_url,
            "redis_url": settings.redis_url or urls.redis_url,
        }
    )


#: This process's settings (cached by worker.runtime; `runtime.reset()` re-reads them).
get_settings = runtime.cached("settings", _resolved_settings)


def required_url(settings: Settings, field: Literal["database_url", "redis_url"]) -> str:
    """The URL a client connects to; unset (no entry point resolved it): SettingsError."""
    url: str | None = getattr(settings, field)
    if url is None:
        raise SettingsError([f"{env_name(field)}: {_NO_EMBEDDED}"])
    return url
