"""A Redis lock per session, so that one session is only ever synced by one worker at a time."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from hireflow import keys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SessionLocks:
    def __init__(self, redis: Redis, *, ttl_s: float) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._release = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[bool]:
        """Yields True while this worker holds the lock, False when another does.

        The lock expires on its own after `ttl_s`, so a worker killed while holding it blocks the
        session only until then; the TTL is longer than a job may run.
        """
        key, token = keys.SESSION_LOCK + session_id, secrets.token_hex(8)
        acquired = bool(await self._redis.set(key, token, nx=True, px=self._ttl_ms))
        try:
            yield acquired
        finally:
            if acquired:
                await self._release(keys=[key], args=[token])
