"""The one place configuration is read: the environment and an optional `.env` file (environment wins)."""

from __future__ import annotations

import os
from typing import Literal

from limits import parse as parse_rate
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production", "test"]


def _split(value: str | None) -> list[str]:
    return [part.strip().rstrip("/") for part in (value or "").split(",") if part.strip()]


class Settings(BaseSettings):
    """Every setting the web and worker processes read. Field names are the seed's variable names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, case_sensitive=False)

    node_env: Environment = "development"
    """`development` (default), `production` or `test`."""
    port: int = Field(default=3000, ge=0, le=65535)
    """TCP port of the HTTP + WebSocket server."""
    host: str | None = None
    """Listen address; 127.0.0.1 in development, 0.0.0.0 in production when unset."""

    db_url: str | None = None
    """MongoDB URI; the database name is the URI path (default `hireflow`)."""
    redis_url: str | None = None
    """Redis URI: `redis://[:password@]host:port/db`, or through Sentinel
    `redis+sentinel://[:password@]host1:26379,host2:26379/service/db` (see hireflow/redis_conn.py)."""
    client_url: str = "http://localhost:5173"
    """Allowed browser origin(s), comma-separated: CORS and WebSocket Origin checks."""

    stream_api_key: str | None = None
    """Stream app key (chat + video)."""
    stream_api_secret: SecretStr | None = None
    """Stream app secret; signs chat user tokens and server requests."""
    stream_chat_url: str | None = None
    """Optional base URL of Stream's chat API."""
    stream_base_url: str | None = None
    """Optional base URL of Stream's video API."""
    stream_timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of one Stream API call."""
    chat_token_ttl_s: int = Field(default=24 * 3600, gt=0)
    """Lifetime of the Stream chat token handed out by `GET /api/chat/token`."""

    clerk_secret_key: SecretStr | None = None
    """Clerk Backend API key: JWKS fetch and user look-ups."""
    clerk_jwt_key: str | None = None
    """PEM public key for networkless session-token verification (preferred when set)."""
    clerk_publishable_key: str | None = None
    """Accepted and ignored (frontend value, kept for parity with the seed)."""
    clerk_api_url: str = "https://api.clerk.com"
    """Clerk Backend API base URL, without the version path."""
    clerk_authorized_parties: str | None = None
    """Allowed `azp` values, comma-separated; default: the CLIENT_URL origins."""
    clerk_webhook_secret: SecretStr | None = None
    """Svix secret (`whsec_…`) for `POST /api/webhooks/clerk`."""
    clerk_clock_skew_s: float = Field(default=5.0, ge=0)
    """Leeway for `exp`/`nbf`/`iat` when verifying session tokens."""
    clerk_timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of one Clerk Backend API call."""
    clerk_jwks_refresh_s: float = Field(default=300.0, gt=0)
    """Without CLERK_JWT_KEY: the key set is re-fetched at most this often (revoked keys drop out)."""
    clerk_jwks_unknown_kid_s: float = Field(default=30.0, gt=0)
    """...and at most this often for a token whose `kid` is not known yet (a key rotation)."""

    inngest_event_key: SecretStr | None = None
    """Inngest event key."""
    inngest_signing_key: SecretStr | None = None
    """Inngest signing key; required outside dev mode."""
    inngest_dev: str | None = None
    """`1` or a dev-server URL selects Inngest dev mode."""

    frontend_dist: str | None = None
    """Directory of the built frontend, served in production (unset or missing: the API only)."""

    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    """Largest accepted request body; larger ones get 413."""
    mongo_timeout_ms: int = Field(default=5000, gt=0)
    """Server selection and socket timeout for MongoDB operations."""
    cache_max_age_s: float = Field(default=30.0, ge=0)
    """Upper bound on how long a read cache entry is trusted without seeing a version bump (see cache.py)."""

    job_timeout_s: float = Field(default=15.0, gt=0)
    """arq timeout of one job; a job lost with its worker is picked up again about 10 s after this."""
    job_max_tries: int = Field(default=8, ge=1)
    """Attempts of a job before arq gives up on it (the reconciler re-enqueues what is still undone)."""
    worker_max_jobs: int = Field(default=20, ge=1)
    """Jobs one worker runs at once; as many code runs again (they spend their time waiting for the engine)."""
    worker_poll_delay_s: float = Field(default=0.1, gt=0)
    """How often an idle worker polls the queue."""
    reconcile_interval_s: int = Field(default=30, ge=1, le=60)
    """How often the reconciler runs (seconds; should divide 60)."""
    reconcile_after_s: float = Field(default=30.0, ge=0)
    """A session whose Stream resources lag its state for this long is re-enqueued by the reconciler."""
    announce_after_s: float = Field(default=5.0, ge=0)
    """A stored change not published after this long is announced by the reconciler (its outbox)."""
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """How long start-up waits for MongoDB and Redis (with backoff) before giving up."""

    ws_auth_timeout_s: float = Field(default=10.0, gt=0)
    """A WebSocket that has not authenticated within this time is closed with 4001."""
    ws_token_grace_s: float = Field(default=600.0, ge=0)
    """A WebSocket stays open this long after its last token expired (refresh with an `auth` frame)."""
    ws_queue_max: int = Field(default=256, ge=8)
    """Frames waiting for one slow WebSocket before its subscriptions are conflated (reset + snapshot)."""
    ws_send_timeout_s: float = Field(default=10.0, gt=0)
    """A WebSocket that cannot take one frame in this time is closed with 1013."""
    ws_send_buffer_bytes: int = Field(default=64 * 1024, ge=4096)
    """Kernel send buffer of each WebSocket (fixed, so a stalled client cannot grow it to megabytes)."""
    ws_heartbeat_s: float = Field(default=30.0, gt=0)
    """A WebSocket silent this long is pinged; one still silent half as long again is dropped
    (`/api/ws`: checked by the once-a-second sweep, realtime/sweep.py; the pad socket: aiohttp's timer)."""
    rt_retention_s: float = Field(default=600.0, gt=0)
    """Events kept per topic for resume: at least this long..."""
    rt_retention_events: int = Field(default=1000, gt=0)
    """...and at least this many (whichever keeps more, up to `rt_log_max_events`)."""
    rt_log_max_events: int = Field(default=20_000, gt=0)
    """Hard cap on the events kept per topic."""
    rt_session_topic_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    """A session topic's sequence and log expire this long after its last event."""
    rt_bus_heartbeat_s: float = Field(default=2.0, gt=0)
    """Ping on the pub/sub connection; no answer within two intervals means reconnect."""
    rt_repair_interval_s: float = Field(default=1.0, gt=0)
    """How often a topic whose publish failed is retried (restarted, resetting its subscribers)."""

    # Abuse limits and privacy (issue 12). Rates are `limits` strings: "30/hour", "10/minute".
    quotas_enabled: bool = True
    """Enforce the per-user quotas below (`false`: none but the subscriptions per socket; benchmarks)."""
    quota_active_sessions: int = Field(default=3, ge=1)
    """Active sessions one user may host at once (checked in MongoDB when creating one)."""
    quota_creates: str = "30/hour"
    """Sessions one user may create per window."""
    quota_joins: str = "30/minute"
    """Join attempts per user per window."""
    quota_chat_tokens: str = "30/minute"
    """`GET /api/chat/token` calls per user per window."""
    quota_writes: str = "60/minute"
    """Other writes (end, invite-code rotation) per user per window."""
    quota_ws_per_user: int = Field(default=20, ge=1)
    """Open WebSockets per user, across every instance."""
    quota_subs_per_socket: int = Field(default=100, ge=1)
    """Topics one WebSocket may subscribe to at once."""
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection that has not sent a complete request head this long after it opened (or after
    its previous response) is closed; also the idle keep-alive timeout."""
    metrics_token: SecretStr | None = None
    """Bearer token `/metrics` requires on the main port in production (else use METRICS_PORT)."""

    # Code runs on a self-hosted Piston engine (see hireflow/piston/ and services/runs.py).
    piston_url: str | None = None
    """Base URL of a Piston engine (`http://piston:2000`); unset: code runs answer 503."""
    piston_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one `POST /api/v2/execute` (compile and run included); a slower engine fails the run."""
    piston_runtimes_ttl_s: float = Field(default=300.0, ge=0)
    """How long the engine's runtime list is served from memory before it is fetched again."""
    run_compile_timeout_ms: int = Field(default=10_000, gt=0)
    """Wall-time limit of a run's compile stage, passed to Piston."""
    run_run_timeout_ms: int = Field(default=3_000, gt=0)
    """Wall-time limit of a run's run stage, passed to Piston."""
    run_compile_memory_limit_bytes: int = Field(default=-1, ge=-1)
    """Memory limit of the compile stage (-1: the engine's own limit)."""
    run_run_memory_limit_bytes: int = Field(default=-1, ge=-1)
    """Memory limit of the run stage (-1: the engine's own limit)."""
    runs_in_flight_per_user: int = Field(default=1, ge=1)
    """Runs one user may have queued or running at once; more get 429."""
    runs_in_flight_per_session: int = Field(default=2, ge=1)
    """Runs one session may have queued or running at once; more get 429."""
    runs_per_user_per_minute: int = Field(default=10, ge=1)
    """Runs one user may start in any 60 seconds; more get 429 with the wait in `Retry-After`."""
    runs_stale_after_s: float = Field(default=60.0, gt=0)
    """A run still `queued` or `running` this long after its last step is retried once, then failed."""

    # Live interview pad (hireflow/pad/).
    pad_max_message_bytes: int = Field(default=256 * 1024, gt=0)
    """Largest pad WebSocket message; a larger one closes the socket with 1009."""
    pad_max_doc_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest encoded pad document; an update that would grow it past this closes the socket with 1009."""
    pad_max_messages_per_s: float = Field(default=100.0, gt=0)
    """Messages per second one pad socket may send, sustained (2 s of burst); more closes it with 1008."""
    pad_idle_unload_s: float = Field(default=60.0, gt=0)
    """A pad with no socket for this long is dropped from memory (reloaded from MongoDB on next open)."""
    pad_compact_updates: int = Field(default=20_000, ge=2)
    """Stored updates after which an instance compacts the batches holding them into a few log
    documents (each time after a random 50-100 % of it, so instances drift apart); a pad's load reads
    at most about twice this many updates' batches per instance, plus the compacted documents of the
    last 1-1.5 `pad_fold_after_s` (folded into the snapshots after that: see pad/store.py and pad/checkpoint.py)."""
    pad_fold_after_s: float = Field(default=60.0, gt=0)
    """Log documents this old are folded into the pads' snapshots. Each instance sweeps for them every
    half of it, and the fold lease (one instance folds at a time) lasts half of it unless renewed, so
    folding goes on within about this long after its holder dies (pad/store.py, pad/checkpoint.py)."""
    pad_awareness_timeout_s: float = Field(default=30.0, gt=0)
    """Presence (awareness) not renewed for this long is dropped, e.g. a dead instance's clients."""
    pad_presence_timeout_s: float = Field(default=30.0, gt=0)
    """A dead instance's pad sockets stop counting in `pad.presence` (who has the pad open) within this:
    each instance's leases last 2/3 of it and are renewed, and expired ones swept, every 1/6 of it."""

    metrics_enabled: bool = True
    """Serve Prometheus metrics (not behind Clerk auth)."""
    metrics_port: int | None = None
    """Serve the web process's `/metrics` on this port instead of the main one."""
    worker_metrics_port: int | None = 9464
    """Port of each worker's `/metrics` (unset: none; a second worker on one host logs that it is taken)."""

    web_concurrency: int | None = Field(default=None, ge=1, le=64)
    """Web processes sharing the port (SO_REUSEPORT); default 1 in development, one per CPU in production."""

    web_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """Event loop of the web processes: uvloop (C transports; `auto` when it is installed) or asyncio's own."""

    @property
    def web_processes(self) -> int:
        if self.web_concurrency is not None:
            return self.web_concurrency
        return (os.cpu_count() or 1) if self.node_env == "production" else 1

    @field_validator("quota_creates", "quota_joins", "quota_chat_tokens", "quota_writes")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)  # raises ValueError on anything `limits` cannot read
        return value

    # High availability (issue 17): a malformed Sentinel URL stops start-up, not the first request.
    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        from hireflow.redis_conn import parse_sentinel_url  # redis and arq are heavy imports for settings

        if value:
            parse_sentinel_url(value)
        return value

    @property
    def listen_host(self) -> str:
        if self.host:
            return self.host
        return "0.0.0.0" if self.node_env == "production" else "127.0.0.1"

    @property
    def allowed_origins(self) -> list[str]:
        return _split(self.client_url)

    @property
    def authorized_parties(self) -> list[str]:
        return _split(self.clerk_authorized_parties) or self.allowed_origins

    @property
    def runs_configured(self) -> bool:
        return bool(self.piston_url)

    @property
    def stream_configured(self) -> bool:
        return bool(self.stream_api_key and self.stream_api_secret)

    def missing_for_production(self) -> list[str]:
        """Names of the variables production cannot start without."""
        if self.node_env != "production":
            return []
        required: dict[str, object] = {
            "DB_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "CLIENT_URL": self.client_url,
            "STREAM_API_KEY": self.stream_api_key,
            "STREAM_API_SECRET": self.stream_api_secret,
            "CLERK_SECRET_KEY": self.clerk_secret_key,
        }
        return [name for name, value in required.items() if not value]
