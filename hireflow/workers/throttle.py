"""Stream's rate limit, shared by every worker: after a 429, nobody calls Stream until it resets.

Without this, another job (a reconciler re-enqueue, a different session) would hit the limit again
before the time Stream asked for had passed.
"""

from __future__ import annotations

from redis.asyncio import Redis

from hireflow import keys


class StreamThrottle:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def wait_s(self) -> float:
        """Seconds until Stream may be called again (0 when it may be now)."""
        ttl_ms = await self._redis.pttl(keys.STREAM_RATE_LIMITED)
        return max(0, int(ttl_ms)) / 1000

    async def hold(self, seconds: float) -> None:
        """Stream said to wait `seconds`; extend, never shorten, the shared pause."""
        ms = int(seconds * 1000)
        if ms > 0 and int(await self._redis.pttl(keys.STREAM_RATE_LIMITED)) < ms:
            await self._redis.set(keys.STREAM_RATE_LIMITED, "1", px=ms)
