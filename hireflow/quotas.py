"""Per-user quotas shared by every instance: rate limits kept in Redis by the `limits` library.

Each quota is a `limits` rate string from the settings (`30/hour`, `60/minute`), counted per user
with a moving window, so a burst at the edge of a window cannot double it. A caller over a quota
gets 429 with `Retry-After` (when the oldest hit in the window expires).

Quotas fail open: when Redis cannot be reached a request is let through (logged, and counted in
`hireflow_quota_unavailable_total`) rather than answered 503, because refusing every write while
Redis is down would turn a Redis outage into a full outage of the API, and MongoDB (where the
writes go) still answers. The active-session cap is not a rate and is checked against MongoDB
(services/sessions.py).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from hireflow import keys
from hireflow.errors import TooManyRequests
from hireflow.observability import Metrics
from hireflow.settings import Settings

log = logging.getLogger(__name__)

QuotaName = Literal["create", "join", "chat_token", "write"]

_MESSAGES: dict[QuotaName, str] = {
    "create": "Too many sessions created, please retry later",
    "join": "Too many join attempts, please retry later",
    "chat_token": "Too many chat token requests, please retry later",
    "write": "Too many requests, please retry later",
}

REDIS_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Quota:
    name: QuotaName
    item: RateLimitItem


class Quotas:
    """The rate quotas of the web process; `await hit(name, user_id)` raises TooManyRequests."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        if not settings.redis_url:
            raise ValueError("REDIS_URL is not set")
        self._enabled = settings.quotas_enabled
        self._metrics = metrics
        # By URL scheme, so that a Sentinel URL (`redis+sentinel://`) gets the Sentinel storage.
        storage = storage_from_string(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=keys.QUOTAS,
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        if not isinstance(storage, RedisStorage):
            raise ValueError("REDIS_URL must be a Redis URL")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._quotas: dict[QuotaName, RateLimitItem] = {
            "create": parse(settings.quota_creates),
            "join": parse(settings.quota_joins),
            "chat_token": parse(settings.quota_chat_tokens),
            "write": parse(settings.quota_writes),
        }

    async def hit(self, name: QuotaName, user_id: str) -> None:
        """Count one request of `user_id` against quota `name`; 429 when it is used up."""
        if not self._enabled:
            return
        item = self._quotas[name]
        try:
            if await self._limiter.hit(item, name, user_id):
                return
            stats = await self._limiter.get_window_stats(item, name, user_id)
        except (StorageError, RedisError, OSError) as exc:
            self._metrics.quota_unavailable.labels(name).inc()
            log.warning("quota %s not enforced, Redis unavailable: %r", name, exc)
            return
        self._metrics.quota_rejections.labels(name).inc()
        retry_after_s = math.ceil(stats.reset_time - time.time())
        raise TooManyRequests(_MESSAGES[name], retry_after_s)

    async def aclose(self) -> None:
        client = getattr(self._storage.bridge, "storage", None)  # the bridge's redis-py client
        if client is not None:
            await client.aclose()
