"""The one settings object (env prefix MCPFC_, `.env` supported).

Embedded defaults put everything in DATA_DIR: a SQLite store, a file-backed Celery broker and the
Celery results in the same database. Production points DATABASE_URL at PostgreSQL and BROKER_URL at
Redis or RabbitMQ. Alibaba credentials are not settings: the SDK's credential chain reads them.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, computed_field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deployer.errors import ConfigError
from schemas.limits import FC_REGIONS

LOOPBACK_HOSTS = frozenset({"localhost", "::1", "0.0.0.0"})
#: The image a deploy without one gets when FC is the local emulator, which runs the command on this host
#: and pulls no image (`GET /v1/service` hands it to clients; the CLI uses it when --image is left out).
LOCAL_IMAGE = "localhost/mcp-fc-emulator:not-pulled"

DEFAULT_SECRET_KEY = "mcpfc-insecure-development-key-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MCPFC_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".mcp-fc")

    database_url: str | None = None
    broker_url: str | None = None
    result_backend: str | None = None

    # Function Compute. FC_ENDPOINT unset means the public endpoint for REGION.
    fc_endpoint: str | None = None
    fc_protocol: Literal["https", "http"] = "https"
    fc_account_id: str | None = None
    region: str = "cn-hangzhou"
    fc_connect_timeout_s: float = 5.0
    fc_read_timeout_s: float = 15.0
    fc_max_attempts: int = Field(default=8, ge=1)
    fc_backoff_max_s: float = 8.0
    fc_rate_limit_per_s: float = Field(default=0.0, ge=0, description="shared FC API rate; 0 = unlimited")
    # Simple Log Service, where a deployment with `log: {project, logstore}` keeps its server's output
    # (deployer/fc/sls.py). Unset: the FC endpoint when that is a local one (the emulator answers
    # GetLogs), else `{region}.log.aliyuncs.com`.
    sls_endpoint: str | None = None
    fc_late_write_horizon_s: float = Field(
        default=300.0, ge=0, description="after a write timed out, check FC for its late landing this long"
    )

    # Deploy behaviour
    deploy_deadline_s: float = Field(default=1800.0, description="a deploy that is not done by then fails")
    ready_poll_s: float = Field(default=1.0, description="first wait between readiness checks")
    ready_poll_max_s: float = 30.0
    wait_queue_after_s: float = Field(
        default=30.0, ge=0, description="a deploy waiting longer for Active re-polls from the `waiting` queue"
    )
    probe_timeout_s: float = 60.0  # the first request is a cold start: image pull + the bridge + the server
    probe_enabled: bool = True
    rollback_on_probe_failure: bool = False
    # Safe releases (issue 14): every deploy publishes a version, verified over MCP through a short-lived
    # trigger before the `live` alias (which the endpoint's trigger serves) moves to it.
    releases_enabled: bool = True
    releases_keep: int = Field(default=5, ge=1, description="published versions kept per deployment")

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    old_secret_keys: list[SecretStr] = Field(default_factory=list, description="still decrypt, for rotation")

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # /docs and /openapi.json: unset means on in development and off in production (docs/decisions.md).
    docs_enabled: bool | None = None
    metrics_enabled: bool = True
    post_rate_limit_per_min: int = 120
    events_streams_per_key: int = Field(
        default=10, ge=0, description="open /events streams per API key and API process; 0 = no limit"
    )
    # Idempotency-Key answers are kept this long, then purged (a retry after that is a new request).
    idempotency_ttl_s: float = Field(default=86400.0, gt=0, description="how long an Idempotency-Key holds")
    idempotency_purge_interval_s: float = Field(
        default=300.0, ge=0, description="at most one purge of expired keys per API process this often"
    )
    # Read cache for GET /v1/deployments/{id} (deployer/api/hot_cache.py). PostgreSQL only: its change feed
    # (migration 0003) evicts on every committed write; without the feed (SQLite) the cache is off.
    read_cache_enabled: bool = Field(default=True, description="cache GETs by id (PostgreSQL change feed)")
    read_cache_ttl_s: float = Field(default=30.0, gt=0, description="backstop: an entry's longest life")
    read_cache_max_entries: int = Field(default=10_000, ge=1, description="documents (and as many API keys)")

    # CLI client
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None

    # Celery task events for Flower / `celery events` (deployer/celery_app.py). Unset: on, except on the
    # embedded file broker.
    task_events: bool | None = Field(default=None, description="send Celery task events (Flower)")

    # Shared FC API rate limiter (deployer/fc/ratelimit.py), used when fc_rate_limit_per_s > 0.
    fc_rate_limit_burst: int = Field(default=1, ge=1, description="FC calls allowed at once above the rate")
    fc_rate_limit_redis_url: str | None = Field(default=None, description="unset: the broker's Redis, if any")
    fc_rate_limit_max_wait_s: float = Field(default=5.0, ge=0, description="longer waits raise FCThrottled")

    # Reliability (tasks/context.py leases, tasks/recovery.py; docs/reliability.md). A run holds a lease on
    # its deployment and renews it every lease_s/3; the worker's recovery loop re-queues (same task id) or
    # fails deployments that no live run holds and that made no progress for recovery_stall_s.
    lease_s: float = Field(
        default=60.0, ge=1, description="a run's lease on its deployment, renewed while it runs"
    )
    recovery_enabled: bool = Field(default=True, description="run the stuck-deploy recovery loop in workers")
    recovery_interval_s: float = Field(default=30.0, gt=0, description="seconds between two recovery sweeps")
    recovery_stall_s: float = Field(
        default=120.0, gt=0, description="no lease, no run due, no change this long"
    )
    recovery_max_requeues: int = Field(
        default=5, ge=0, description="re-queues of one operation before failing it"
    )

    # The periodic scheduler (`mcp-fc beat`, tasks/schedule.py, tasks/beat.py). One beat per fleet leads (a
    # lease in the database, renewed at every tick); another one waits as a standby and takes over within
    # beat_standby_poll_s of the lease's expiry: at most beat_lease_s after the leader stopped renewing (died,
    # froze, hung). One setting per interval; 0 turns it off.
    beat_standby_poll_s: float = Field(
        default=5.0, gt=0, description="how often a standby beat tries to take the lead"
    )
    beat_max_loop_s: float = Field(default=30.0, gt=0, description="longest sleep of the beat between ticks")
    beat_lease_s: float = Field(
        default=90.0, gt=0, description="the lead ends this long after the leader's last renewal"
    )

    # Scheduled MCP health checks (tasks/health.py): every live deployment re-probed over MCP through its
    # own URL and auth, on the `health` queue, in batches, paced by a bucket of their own.
    health_interval_s: float = Field(
        default=60.0, ge=0, description="seconds between two health checks of a deployment; 0 = off"
    )
    health_batch_size: int = Field(default=20, ge=1, description="deployments per health-check task")
    health_concurrency: int = Field(default=4, ge=1, description="probes at once in one health-check task")
    health_timeout_s: float = Field(default=15.0, gt=0, description="one health probe's time limit")
    health_probe_rate_per_s: float = Field(
        default=10.0, ge=0, description="health probes per second, all workers together; 0 = unpaced"
    )
    health_unhealthy_after: int = Field(
        default=1, ge=1, description="consecutive failed probes before a deployment is unhealthy"
    )
    # FC's own check of the bridge (the function's healthCheckConfig.failureThreshold, every 2 s): this many
    # failures in a row and FC replaces the instance: the liveness verdict, not the start-up's patience (the
    # bridge binds once its server answers). 5 is the product's (deployer.fc.spec.FC_HEALTH_FAILURES).
    fc_health_failure_threshold: int = Field(default=5, ge=1, le=120)

    # Scheduled operations checks (issue 15; tasks/drift.py, tasks/tokens.py, on the beat schedule).
    drift_check_enabled: bool = Field(default=True, description="compare FC with each spec on a schedule")
    drift_check_interval_s: float = Field(default=600.0, gt=0, description="seconds between drift sweeps")
    drift_check_max_per_sweep: int = Field(default=1000, ge=1, description="deployments checked per sweep")
    token_check_interval_s: float = Field(default=3600.0, gt=0, description="seconds between token checks")
    token_expiry_warn_days: float = Field(
        default=30.0, ge=0, description="flag endpoint tokens that expire within this many days"
    )
    endpoint_token_ttl_days: float = Field(
        default=365.0, gt=0, description="lifetime of a new endpoint token"
    )
    token_auto_rotate: bool = Field(
        default=False, description="rotate flagged tokens on schedule (clients must fetch the new config)"
    )

    # Image-less deploys (issue 23, deployer/build): `npx`/`uvx` servers resolved, locked and packed into a
    # code package on the worker's `build` queue. `build_target`: `fc` (linux x86_64, Python 3.12 like FC's
    # Python312 layer) or `host` (this machine's platform and Python, for the local emulator); unset means
    # `host` when FC is the local emulator, else `fc`.
    build_target: Literal["fc", "host"] | None = None
    build_cache_dir: Path | None = Field(
        default=None, description="built packages; unset: DATA_DIR/build-cache"
    )
    build_cache_max_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="the build cache's size; least recently used packages go first"
    )
    build_tool_cache_dir: Path | None = Field(
        default=None, description="npm's and uv's download caches; unset: DATA_DIR/build-tools"
    )
    build_timeout_s: float = Field(default=600.0, gt=0, description="one npm / uv command's time limit")
    # Mirrors or private registries. A URL may carry credentials (https://user:token@host/...): they are
    # passed to npm / uv in their environment and masked in every event and log line.
    build_npm_registry: SecretStr | None = Field(default=None, description="npm registry URL")
    build_pypi_index_url: SecretStr | None = Field(default=None, description="PyPI index URL (uv)")
    # FC's limit for code sent through the API (zipFile), counted on the base64 text (the limits page says
    # "ZIP, Base64-encoded"; which of the two it counts is not public, so the stricter). Lower only, e.g. tests.
    build_max_code_b64_bytes: int = Field(default=100 * 1024 * 1024, ge=1, le=100 * 1024 * 1024)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mcp-fc.db"

    @property
    def effective_docs_enabled(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else self.environment != "production"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def effective_result_backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        url = self.effective_database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return "db+" + url

    @property
    def fc_is_local(self) -> bool:
        """The FC endpoint is on this machine: the local emulator (Alibaba Cloud FC is never on loopback)."""
        if not self.fc_endpoint:
            return False
        host = urlsplit(self.fc_endpoint if "://" in self.fc_endpoint else f"//{self.fc_endpoint}").hostname
        return host in LOOPBACK_HOSTS or (host or "").startswith("127.")

    @property
    def effective_build_target(self) -> str:
        return self.build_target or ("host" if self.fc_is_local else "fc")

    @property
    def effective_build_cache_dir(self) -> Path:
        return self.build_cache_dir or self.data_dir / "build-cache"

    @property
    def effective_build_tool_cache_dir(self) -> Path:
        return self.build_tool_cache_dir or self.data_dir / "build-tools"

    @field_validator("region")
    @classmethod
    def _region_fc_has(cls, v: str) -> str:
        # Every deploy without a region goes there: a region FC does not have would fail each one later.
        if v not in FC_REGIONS:
            raise ValueError(
                f"Function Compute has no region {v!r}; use one of {', '.join(sorted(FC_REGIONS))}"
            )
        return v

    @model_validator(mode="after")
    def _lease_outlasts_the_beat_loop(self) -> "Settings":
        # The leader renews once per loop: a lease shorter than two loops would lapse while it is healthy.
        if self.beat_lease_s < 2 * self.beat_max_loop_s:
            raise ConfigError(
                f"MCPFC_BEAT_LEASE_S ({self.beat_lease_s:g}) must be at least twice MCPFC_BEAT_MAX_LOOP_S "
                f"({self.beat_max_loop_s:g}): the leader renews its lease once per loop"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
            raise ConfigError("MCPFC_SECRET_KEY must be set to a random value in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
