"""At most `quota_ws_per_user` open WebSockets per user, counted across every instance.

Not a rate, so not a `limits` quota: each user has a Redis sorted set of the sockets they hold
(member: instance id + connection, score: lease expiry). Taking a seat drops expired leases, then
adds one if fewer than the limit remain, in one Lua script (atomic, so concurrent upgrades on several
instances cannot overshoot). Each instance renews the leases of its open sockets every third of
`LEASE_S`, so the seats of an instance that died free themselves within `LEASE_S`.

Like the other quotas this fails open: when Redis cannot be reached a socket is let in (logged and
counted); its seat is then not recorded and the count under-reports until it closes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hireflow import keys
from hireflow.observability import Metrics

log = logging.getLogger(__name__)

LEASE_S = 120.0

# KEYS[1]: the user's seats. ARGV: now, lease expiry, limit, seat id, key ttl s.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class Seats:
    def __init__(self, redis: Redis, limit: int | None, metrics: Metrics, *, lease_s: float = LEASE_S) -> None:
        """`limit` None: no limit, nothing kept in Redis (QUOTAS_ENABLED=false)."""
        self._redis = redis
        self._limit = limit
        self._metrics = metrics
        self._lease_s = lease_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._instance = secrets.token_hex(6)
        self._releasing: set[asyncio.Task[None]] = set()

    def seat_id(self, conn: object) -> str:
        return f"{self._instance}:{id(conn)}"

    async def acquire(self, user_id: str, seat_id: str) -> bool:
        """Take a seat for a new socket of `user_id`; False when the user already holds the limit."""
        if self._limit is None:
            return True
        now = time.time()
        try:
            taken = await self._acquire(
                keys=[keys.WS_SEATS + user_id],
                args=[now, now + self._lease_s, self._limit, seat_id, int(self._lease_s) + 1],
            )
        except (RedisError, OSError) as exc:
            self._metrics.quota_unavailable.labels("ws_connections").inc()
            log.warning("WebSocket quota not enforced, Redis unavailable: %r", exc)
            return True
        if not taken:
            self._metrics.quota_rejections.labels("ws_connections").inc()
        return bool(taken)

    def release_soon(self, user_id: str, seat_id: str) -> None:
        """Give the seat back, in a task of its own: the socket's handler may be cancelled meanwhile."""
        if self._limit is None:
            return
        task = asyncio.create_task(self._release(user_id, seat_id))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, user_id: str, seat_id: str) -> None:
        try:
            await self._redis.zrem(keys.WS_SEATS + user_id, seat_id)
        except (RedisError, OSError) as exc:
            log.debug("WebSocket seat not released (its lease will expire): %r", exc)

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:
        """Extend the leases of the (user id, seat id) pairs this instance holds."""
        if self._limit is None:
            return
        expiry = time.time() + self._lease_s
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, seat_id in held:
                pipe.zadd(keys.WS_SEATS + user_id, {seat_id: expiry}, xx=True)
                pipe.expire(keys.WS_SEATS + user_id, int(self._lease_s) + 1)
            await pipe.execute()

    async def renew_forever(self, held: Callable[[], Iterable[tuple[str, str]]]) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self.renew(list(held()))
            except (RedisError, OSError) as exc:
                log.debug("WebSocket seats not renewed: %r", exc)
