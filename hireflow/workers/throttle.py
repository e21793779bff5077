"""Stream's rate limit, shared by every worker: after a 429, nobody calls Stream until it resets.

Without this, another job (a reconciler re-enqueue, a different session) would hit the limit again
before the time Stream asked for had passed.
"""

from __future__ import annotations

from redis.asyncio import Redis

from hireflow import keys

# Extend, never shorten: one script, so two workers' 429s cannot interleave their read and write.
_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
"""


class StreamThrottle:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hold = redis.register_script(_HOLD)

    async def wait_s(self) -> float:
        """Seconds until Stream may be called again (0 when it may be now)."""
        ttl_ms = await self._redis.pttl(keys.STREAM_RATE_LIMITED)
        return max(0, int(ttl_ms)) / 1000

    async def hold(self, seconds: float) -> None:
        """Stream said to wait `seconds`; extend, never shorten, the shared pause."""
        ms = int(seconds * 1000)
        if ms > 0:
            await self._hold(keys=[keys.STREAM_RATE_LIMITED], args=[ms])
