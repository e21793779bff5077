"""Process-local read caches that stay correct across instances.

Every write to a collection bumps that collection's version counter in Redis *after* the write;
every read first fetches the current versions (one MGET) and only trusts a local entry that was
stored under the same version. A reader reads the version *before* querying MongoDB, so an entry
is never older than the version it is filed under: a write that lands meanwhile bumps the version
and the next reader re-queries. When Redis cannot be reached, nothing is served from cache.

The counters start at a random offset whenever their key is missing (first use, or a Redis that
restarted empty), so a counter that starts over never matches an entry stored before. A bump that
fails (Redis unreachable for the writer) is remembered and retried: before the writer's next read,
which reads through until it succeeds, and by the realtime repair loop (`RealtimeSink.repair`).
Until it lands, other instances may serve the entry from before that write; `max_age_s` bounds that.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hireflow import keys, replies
from hireflow.observability import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# INCR that starts from a random offset when the key is missing.
_BUMP = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""


def _seed() -> str:
    return str(secrets.randbits(52))


@dataclass(frozen=True)
class Versions:
    """The collection versions a request read once; None where caching is off for this request."""

    users: str | None
    sessions: str | None

    @property
    def sessions_view(self) -> str | None:
        """Version of anything that embeds both sessions and users (session JSON populates users)."""
        if self.users is None or self.sessions is None:
            return None
        return f"{self.users}:{self.sessions}"


NO_CACHE = Versions(None, None)


class CacheVersions:
    """Reads and bumps the Redis version counters.

    Every request reads the versions, and under load most of them would each pay a Redis round trip
    for the same two numbers. So reads are coalesced: the requests that arrive while one MGET is in
    flight all share the next one, sent as soon as it returns. Each request still gets versions read
    *after* it arrived, so a write that completed (and bumped) before the request started is always
    seen: another instance's write and the caller's own are visible on the very next request."""

    def __init__(self, redis: Redis, metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics
        self._bump = redis.register_script(_BUMP)
        self._unbumped: set[str] = set()
        """Version keys whose bump failed: this process's writes that other instances cannot see yet."""
        self._next: asyncio.Future[Versions] | None = None
        """The read the requests waiting now will share; not sent yet."""
        self._pump: asyncio.Task[None] | None = None
        self.round_trips = 0
        """MGETs sent (tests and benchmarks compare it with the requests served)."""

    async def read(self) -> Versions:
        """The current versions, read from Redis after this call began; NO_CACHE when Redis fails."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        batch = self._next
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._send_batches())
        # Shielded: one waiter's cancellation must not cancel the read the others share.
        return await asyncio.shield(batch)

    async def aclose(self) -> None:
        """Stop the read in flight (before the Redis client closes)."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    async def _send_batches(self) -> None:
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                versions = await self._read_once()
            except asyncio.CancelledError:  # shutdown: no waiter may hang
                batch.cancel()
                if self._next is not None:
                    self._next.cancel()
                    self._next = None
                raise
            except Exception as exc:  # not a Redis failure (those read through): each waiter raises it
                batch.set_exception(exc)
                batch.exception()  # retrieved: waiters that left must not make it warn
                continue
            batch.set_result(versions)

    async def _read_once(self) -> Versions:
        self.round_trips += 1
        try:
            if self._unbumped:
                await self.flush()
            users, sessions = await self._redis.mget([keys.USERS_VERSION, keys.SESSIONS_VERSION])
            if users is None or sessions is None:
                # First use, or Redis restarted empty: start fresh random counters (NX: whichever
                # instance comes first wins) and read what won.
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(keys.USERS_VERSION, _seed(), nx=True)
                    pipe.set(keys.SESSIONS_VERSION, _seed(), nx=True)
                    pipe.mget([keys.USERS_VERSION, keys.SESSIONS_VERSION])
                    *_, (users, sessions) = await pipe.execute()
                if users is None or sessions is None:
                    return NO_CACHE
        except (RedisError, OSError) as exc:
            log.warning("cache versions unavailable, reading through: %s", exc)
            return NO_CACHE
        return Versions(replies.text(users), replies.text(sessions))

    async def bump(self, key: str) -> None:
        """Invalidate every instance's entries for one collection. Never raises: the write it follows stands."""
        try:
            await self._bump(keys=[key], args=[_seed()])
        except (RedisError, OSError) as exc:
            self._unbumped.add(key)
            if self._metrics is not None:
                self._metrics.deferred_writes.labels("cache_bump").inc()
            log.warning("could not bump %s; reading through until it can be: %s", key, exc)

    async def flush(self) -> None:
        """Retry the bumps that failed; raises while Redis still cannot be reached."""
        for key in list(self._unbumped):
            await self._bump(keys=[key], args=[_seed()])
            self._unbumped.discard(key)


class LocalCache(Generic[T]):
    """A bounded LRU map whose entries are valid only under the version they were stored with.

    A value is shared by every request of the process: store immutable values (the session reads
    keep serialized JSON, services/session_views.py) or hand out copies (users)."""

    def __init__(self, *, max_entries: int, max_age_s: float) -> None:
        self._entries: OrderedDict[object, tuple[str, float, T]] = OrderedDict()
        self._loading: dict[tuple[object, str], asyncio.Future[T]] = {}
        self._max_entries = max_entries
        self._max_age_s = max_age_s

    async def get_or_load(self, key: object, version: str | None, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, else `load()`; concurrent misses for one key and version share one load,
        so a version bump under load costs one query, not one per waiting request."""
        cached = self.get(key, version)
        if cached is not None:
            return cached
        if version is None:
            return await load()
        flight = (key, version)
        pending = self._loading.get(flight)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():  # the loading request was cancelled, not this one
                    return await load()
                raise
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[flight] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the waiters re-raise it, an unawaited one must not warn
            raise
        else:
            future.set_result(value)
            self.put(key, version, value)
            return value
        finally:
            del self._loading[flight]

    def get(self, key: object, version: str | None) -> T | None:
        if version is None:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_version, stored_at, value = entry
        if stored_version != version or time.monotonic() - stored_at > self._max_age_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: object, version: str | None, value: T) -> None:
        if version is None:
            return
        self._entries[key] = (version, time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
