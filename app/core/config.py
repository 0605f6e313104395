"""Settings: the one place the service reads its configuration (environment variables prefixed ``RHYTHM_``).

Development runs with embedded defaults under one data directory (``RHYTHM_DATA_DIR``, default ``./var``:
SQLite database, SQLite-backed Celery broker, adapters, the admin token file of ``make run``);
production is the same code with ``RHYTHM_DATABASE_URL``/``RHYTHM_BROKER_URL`` pointing at Postgres/Redis.
Production refuses to start with default or empty secrets.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.timebounds import DEFAULT_MAX_CLOCK_SKEW, MAX_CLOCK_SKEW_LIMIT

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class PolicyBackend(enum.StrEnum):
    LOCAL = "local"
    VLLM = "vllm"
    FALLBACK = "fallback"


def _normalise_database_url(url: str, *, sync: bool) -> str:
    """Map a plain ``postgresql://``/``sqlite://`` URL to the driver each side of the service uses.

    The API runs on asyncio (asyncpg, aiosqlite); workers, Alembic and the CLI are synchronous (psycopg,
    sqlite3). Operators then set one URL and never think about drivers.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    dialect = scheme.split("+", 1)[0]
    if dialect in {"postgresql", "postgres"}:
        return f"postgresql+{'psycopg' if sync else 'asyncpg'}://{rest}"
    if dialect == "sqlite":
        return f"sqlite://{rest}" if sync else f"sqlite+aiosqlite://{rest}"
    raise ValueError(f"unsupported database {dialect!r}: use postgresql:// or sqlite://")


class Settings(BaseSettings):
    """Every knob of the service. Durations are ``timedelta`` (env: seconds or ISO 8601, e.g. ``PT2H``)."""

    model_config = SettingsConfigDict(env_prefix="RHYTHM_", env_file=None, extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    # Where the embedded defaults live; database_url, broker_url and adapter_dir default to files in it.
    data_dir: Path = Path("var")
    database_url: str = "sqlite+aiosqlite:///var/rhythm.db"
    broker_url: str = "sqla+sqlite:///var/broker.sqlite"
    # Redis only: a prefix for every broker key, so two deployments (or test sessions) can share a database.
    broker_key_prefix: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    admin_token: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    log_level: str = "INFO"
    log_json: bool | None = None

    policy_backend: PolicyBackend = PolicyBackend.LOCAL
    vllm_url: str = "http://127.0.0.1:8001/v1"
    # Empty: the first base model the server lists at /v1/models.
    vllm_model: str = ""
    vllm_api_key: SecretStr = SecretStr("")
    # A recommendation waits at most this long for vLLM before the fallback answers.
    vllm_timeout: timedelta = timedelta(seconds=2)
    vllm_connect_timeout: timedelta = timedelta(milliseconds=500)
    # Circuit breaker of the primary policy backend: open after this many consecutive failures, probe again
    # after the cool-down.
    policy_failure_threshold: int = Field(default=3, ge=1)
    policy_cooldown: timedelta = timedelta(seconds=30)
    # None: the model shipped in the policy package.
    model_dir: Path | None = None
    adapter_dir: Path = Path("var/adapters")

    # API4 (OWASP): bodies are small JSON documents; anything larger is a mistake or an attack.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The prompt renderer labels windows of up to 365 days (policy.prompt.MAX_WINDOW_DAYS).
    history_days: int = Field(default=30, ge=1, le=365)
    adapter_history_days: int = Field(default=7, ge=1, le=365)
    feedback_window: timedelta = timedelta(hours=24)
    temperature: float = Field(default=1.0, gt=0.0, le=10.0)
    # Share of uniform mass mixed into every sampled distribution, so that each allowed action keeps a
    # propensity of at least floor / 10 (0.002 by default) for offline evaluation of later models.
    exploration_floor: float = Field(default=0.02, ge=0.0, lt=1.0)
    # None (production): each recommendation's action is drawn from fresh OS entropy. An integer: drawn from a
    # generator keyed by (seed, at, prompt), so that a simulation or benchmark run again with the same seed
    # lives the same lives, however its requests interleave. Not for production: it makes draws predictable.
    sampling_seed: int | None = Field(default=None, ge=0)
    # The person's own answers combined with every backend's distribution before the floor (policy.evidence,
    # measured in docs/benchmarks.md): weight 0 turns it off; sharpness softens the model's log-probabilities;
    # pool is how much answers on the other kind of day (weekday / weekend) count; answers of the last
    # evidence_days are counted.
    evidence_weight: float = Field(default=12.0, ge=0.0, le=100.0)
    evidence_sharpness: float = Field(default=0.25, gt=0.0, le=1.0)
    evidence_pool: float = Field(default=1.0, ge=0.0, le=1.0)
    evidence_days: int = Field(default=56, ge=1, le=365)
    idempotency_ttl: timedelta = timedelta(hours=24)
    readiness_timeout: timedelta = timedelta(seconds=3)
    # Timestamps a client sends (``at``, ``rescheduled_to``, filters) must lie within this of the server's
    # clock (app/core/timebounds.py); capped so that no accepted instant can overflow date arithmetic.
    max_clock_skew: timedelta = Field(
        default=DEFAULT_MAX_CLOCK_SKEW, gt=timedelta(0), le=MAX_CLOCK_SKEW_LIMIT
    )

    # Rate limits (app/core/ratelimit.py), in the `limits` notation ("600/minute", several joined by ";").
    # Generous on purpose: they stop floods and token guessing, not normal clients or the test suite.
    rate_limit_enabled: bool = True
    rate_limit_per_token: str = "600/minute"
    # Requests without a bearer token, and requests whose token the API rejected (401), per client IP.
    rate_limit_per_ip: str = "120/minute"
    # memory:// counts per process (one `make run` server); redis://… shares the counts between processes.
    rate_limit_storage_url: str = "memory://"
    # Webhook inbox (app.webhooks): bodies over the cap are refused with 413 before anything is stored; failed
    # processing is retried with exponential backoff (base doubling up to the cap) for at most max_attempts.
    webhook_max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_retry_backoff: timedelta = timedelta(seconds=5)
    webhook_retry_backoff_max: timedelta = timedelta(minutes=30)
    # Terra (bridges.terra): the webhook signing secret; empty → POST /v1/webhooks/terra answers 404.
    terra_webhook_secret: SecretStr = SecretStr("")

    # Provider connections (app.connections, bridges.oauth). public_base_url is the public HTTPS origin of
    # this service: OAuth redirect URIs ({base}/v1/connect/{provider}/callback) and Google's push address
    # derive from it. Per OAuth provider: an empty client id means "not configured" (its connect routes answer
    # 404); the URLs default to the provider's documented endpoints and are overridable (tests point them at
    # a local server). An empty revoke URL means the provider offers no revocation.
    public_base_url: str = "http://127.0.0.1:8000"
    whoop_client_id: str = ""
    whoop_client_secret: SecretStr = SecretStr("")
    whoop_authorize_url: str = "https://api.prod.whoop.com/oauth/oauth2/auth"
    whoop_token_url: str = "https://api.prod.whoop.com/oauth/oauth2/token"
    # WHOOP has no RFC 7009 endpoint: DELETE /v2/user/access with the user's bearer token revokes our access.
    whoop_revoke_url: str = "https://api.prod.whoop.com/developer/v2/user/access"
    whoop_api_base_url: str = "https://api.prod.whoop.com/developer"
    oura_client_id: str = ""
    oura_client_secret: SecretStr = SecretStr("")
    oura_authorize_url: str = "https://cloud.ouraring.com/oauth/authorize"
    oura_token_url: str = "https://api.ouraring.com/oauth/token"
    oura_revoke_url: str = "https://api.ouraring.com/oauth/revoke"
    oura_api_base_url: str = "https://api.ouraring.com"
    google_health_client_id: str = ""
    google_health_client_secret: SecretStr = SecretStr("")
    google_health_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_health_token_url: str = "https://oauth2.googleapis.com/token"
    google_health_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_health_api_base_url: str = "https://health.googleapis.com"
    # Google Calendar + Tasks (one consent for both).
    google_client_id: str = ""
    google_client_secret: SecretStr = SecretStr("")
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_api_base_url: str = "https://www.googleapis.com"
    # Terra's widget session is created by our backend with these (empty dev id → the session route is 404).
    terra_dev_id: str = ""
    terra_api_key: SecretStr = SecretStr("")
    terra_api_base_url: str = "https://access.tryterra.co"
    # Terra's REST API (``DELETE /auth/deauthenticateUser`` when a Terra connection is removed here).
    terra_rest_api_base_url: str = "https://api.tryterra.co/v2"
    # A pending authorization (state + PKCE verifier) is single-use and expires after this.
    oauth_state_ttl: timedelta = timedelta(minutes=10)
    # Access tokens expiring within this margin are refreshed before use.
    oauth_refresh_margin: timedelta = timedelta(minutes=5)
    # Every call to a provider's OAuth or profile endpoint gives up after this (the callback must not hang).
    oauth_http_timeout: timedelta = timedelta(seconds=10)
    # Revocations the provider did not accept yet are retried with exponential backoff up to this many times.
    revocation_max_attempts: int = Field(default=12, ge=1, le=50)
    revocation_retry_backoff: timedelta = timedelta(seconds=30)
    revocation_retry_backoff_max: timedelta = timedelta(hours=1)
    # Wearable webhooks (bridges.whoop / oura / google_health / garmin). WHOOP and Oura sign deliveries with
    # the OAuth client secret above (empty → their webhooks answer 404). Each secret below: empty → 404.
    oura_verification_token: SecretStr = SecretStr("")
    google_health_webhook_secret: SecretStr = SecretStr("")
    # Garmin signs nothing: the path segment of /v1/webhooks/garmin/<secret> is the shared secret.
    garmin_webhook_path_secret: SecretStr = SecretStr("")
    # Wearable REST reads (fetch after notify, backfill, reconcile) against the *_api_base_url above.
    provider_api_timeout: timedelta = timedelta(seconds=10)
    provider_api_max_retries: int = Field(default=3, ge=0, le=10)
    # Longest Retry-After waited inside a task; a longer one fails the attempt (the inbox backoff retries).
    provider_api_max_retry_after: timedelta = timedelta(seconds=30)
    # A new connection's backfill and the daily reconcile's window, in days.
    wearable_backfill_days: int = Field(default=28, ge=1, le=90)
    wearable_reconcile_days: int = Field(default=3, ge=1, le=28)
    # Phone uploads (app.ingest): readings per request (bodies are capped by max_body_bytes).
    ingest_max_readings: int = Field(default=5000, ge=1, le=100_000)

    # Google Calendar sync (app.calendar): the Tasks API root (its own host; tests point it at a local
    # server), the channel lifetime asked of Google (it may grant less), how early beat renews, how far back a
    # full sync reads, how far ahead events are kept (open-ended series expand forever), the Tasks pull.
    google_tasks_api_base_url: str = "https://tasks.googleapis.com"
    google_calendar_channel_ttl: timedelta = timedelta(days=7)
    google_calendar_renew_before: timedelta = timedelta(hours=48)
    google_calendar_sync_past: timedelta = timedelta(days=35)
    google_calendar_sync_future: timedelta = timedelta(days=60)
    google_tasks_pull_interval: timedelta = timedelta(minutes=15)
    # Calendar classifier's second opinion (bridges.actions.llm): an OpenAI-compatible server (base URL up to
    # and including /v1) asked about events the rules call an action with less than the threshold's
    # confidence. Empty URL = off, the default: event titles would leave the service, so turn it on only
    # with a provider the users agreed to. At most max_calls requests per calendar sync.
    calendar_llm_url: str = ""
    calendar_llm_model: str = ""
    calendar_llm_api_key: SecretStr = SecretStr("")
    calendar_llm_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    calendar_llm_timeout: timedelta = timedelta(seconds=5)
    calendar_llm_max_calls: int = Field(default=50, ge=1, le=10_000)
    # A sync waits this long after the notification that asked for it: Google sends bursts (several per
    # change), and everything arriving meanwhile is covered by that one sync.
    google_calendar_sync_debounce: timedelta = timedelta(seconds=3)

    # Workers and beat stamp a heartbeat row this often; /readyz calls one stale after heartbeat_stale_after.
    heartbeat_interval: timedelta = timedelta(seconds=10)
    heartbeat_stale_after: timedelta = timedelta(seconds=30)
    # A dead worker makes /readyz answer 503 (webhooks and jobs would pile up unprocessed); a dead beat only
    # degrades it ("status": "degraded"): requests are served, periodic housekeeping is late.
    readiness_requires_worker: bool = True

    # Web console (app/console): how long a signed-in browser session lasts, and whether its cookie is
    # Secure. None: Secure everywhere but development, where `make run` serves plain http on 127.0.0.1.
    console_session_ttl: timedelta = Field(default=timedelta(hours=12), gt=timedelta(0))
    console_cookie_secure: bool | None = None
    # Weekly per-user LoRA fine-tunes (app/finetune, workers/finetune.py).
    # Eligibility: this many days between a user's first and last answered recommendation, and this many
    # answers; other users' jobs end `skipped` with the reason.
    finetune_min_history_days: int = Field(default=21, ge=1, le=365)
    finetune_min_answered: int = Field(default=40, ge=1)
    # A running job's lease: renewed every heartbeat interval; a job whose lease expired (its worker died) is
    # queued again by the sweeper, at most max_attempts times in all.
    finetune_lease: timedelta = timedelta(minutes=3)
    finetune_heartbeat_interval: timedelta = timedelta(seconds=15)
    finetune_max_attempts: int = Field(default=3, ge=1, le=20)
    finetune_retry_backoff: timedelta = timedelta(seconds=60)
    # A queued job that no worker started within this is sent to the broker again (a lost message).
    finetune_requeue_after: timedelta = timedelta(minutes=30)
    # The weekly sweep, a crontab "minute hour day-of-month month day-of-week" in UTC (Monday 03:00).
    finetune_schedule: str = "0 3 * * 1"
    finetune_sweep_interval: timedelta = timedelta(minutes=1)
    # Offline gate: the newest days are held out of training for the SNIPS estimate; promote only if the
    # adapter's acceptance is not worse than the current policy's by more than the margin (lower confidence
    # bound), with at least min_ess effective samples and a bound at most max_halfwidth below the estimate
    # (else the week's jobs are pooled, or it is held back as not enough evidence).
    finetune_holdout_days: int = Field(default=7, ge=1, le=60)
    finetune_gate_margin: float = Field(default=0.02, ge=0.0, le=1.0)
    finetune_gate_min_ess: float = Field(default=20.0, ge=1.0)
    finetune_gate_max_halfwidth: float = Field(default=0.1, gt=0.0, le=1.0)
    finetune_gate_z: float = Field(default=1.645, gt=0.0)
    finetune_rank: int = Field(default=8, ge=1, le=512)
    finetune_epochs: int = Field(default=6, ge=1, le=100)
    finetune_seed: int = 0
    # Torch threads of one training run (the worker's whole budget on a 2-core box).
    finetune_torch_threads: int = Field(default=2, ge=1, le=64)
    # vLLM's --max-lora-rank; a trained rank above it is refused before training.
    vllm_max_lora_rank: int = Field(default=16, ge=1, le=512)
    # Active adapters vLLM does not list are loaded again this often (and at worker start-up).
    adapter_reconcile_interval: timedelta = timedelta(minutes=5)
    # Merged per-user models the local backend keeps in memory (LRU, each with its own prefix cache).
    local_adapter_cache_size: int = Field(default=8, ge=1, le=1024)

    @model_validator(mode="before")
    @classmethod
    def _defaults_in_data_dir(cls, values: Any) -> Any:
        # One knob moves every embedded file: a CLI run outside the repository points RHYTHM_DATA_DIR at its
        # data instead of silently creating ./var/rhythm.db wherever it happens to be.
        if not isinstance(values, dict):
            return values
        data_dir = Path(str(values.get("data_dir") or "var"))
        values.setdefault("database_url", f"sqlite+aiosqlite:///{data_dir / 'rhythm.db'}")
        values.setdefault("broker_url", f"sqla+sqlite:///{data_dir / 'broker.sqlite'}")
        values.setdefault("adapter_dir", data_dir / "adapters")
        return values

    @field_validator("*", mode="before")
    @classmethod
    def _seconds_as_timedelta(cls, value: object, info: ValidationInfo) -> object:
        # Environment values are strings; for a duration a bare number means seconds, as in most ops tooling.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.annotation is timedelta and isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @field_validator("finetune_schedule")
    @classmethod
    def _check_finetune_schedule(cls, value: str) -> str:
        from celery.schedules import crontab

        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"expected 5 crontab fields (minute hour day month weekday), got {value!r}")
        minute, hour, day_of_month, month, day_of_week = fields
        # A typo fails at start-up, not at the first sweep.
        crontab(minute, hour, day_of_week, day_of_month, month)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return _normalise_database_url(value, sync=False)

    @field_validator("rate_limit_per_token", "rate_limit_per_ip")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # Imported here: settings load in every CLI command, the limits package only matters to the API.
        from limits import parse_many

        parse_many(value)  # a typo fails at start-up, not on the first request
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        if value.partition("://")[0] not in {"memory", "redis", "rediss"}:
            raise ValueError(f"unsupported rate limit storage {value!r}: use memory:// or redis://")
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Self:
        if self.env is not Environment.PRODUCTION:
            return self
        problems = []
        secret = self.secret_key.get_secret_value()
        if not secret or secret == DEFAULT_SECRET_KEY or len(secret) < 32:
            problems.append("RHYTHM_SECRET_KEY must be set to a random value of at least 32 characters")
        if len(self.admin_token.get_secret_value()) < 32:
            problems.append("RHYTHM_ADMIN_TOKEN must be set to a random value of at least 32 characters")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def async_database_url(self) -> str:
        return self.database_url

    @property
    def sync_database_url(self) -> str:
        return _normalise_database_url(self.database_url, sync=True)

    @property
    def admin_token_file(self) -> Path:
        """Where ``make run`` keeps the generated admin token (``make demo`` reads it)."""
        return self.data_dir / "admin_token"

    @property
    def console_secure_cookie(self) -> bool:
        """Secure flag of the console cookie (browsers drop Secure cookies set over plain http)."""
        if self.console_cookie_secure is not None:
            return self.console_cookie_secure
        return self.env is not Environment.DEVELOPMENT

    @property
    def json_logs(self) -> bool:
        return self.env is Environment.PRODUCTION if self.log_json is None else self.log_json


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; tests build their own ``Settings`` and pass it explicitly."""
    return Settings()
