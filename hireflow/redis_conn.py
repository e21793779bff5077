"""`REDIS_URL` → every Redis client a process needs, for one Redis or a Sentinel-managed primary.

Two URL forms are accepted:

- `redis://[:password@]host:port/db` (or `rediss://`): one Redis, as redis-py reads it;
- `redis+sentinel://[:password@]host1:26379,host2:26379/service/db`: the primary named `service`, found
  through the Sentinels listed (default port 26379, db default 0). The password is the data nodes'
  (`requirepass`); Sentinels are expected to need none, as arq cannot pass one to them.

Sentinel clients (`master_for`) ask a Sentinel for the primary's address whenever they open a
connection, and drop a connection that finds the node demoted (READONLY), so after a failover the
next command reaches the new primary; commands in flight at the moment of the failure fail, as with
a restarted Redis. Nothing here connects: building the clients is a pure function of the settings,
so start-up decides when to wait for Redis.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError, TimeoutError

from hireflow import keys

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """A `redis+sentinel://` URL, parsed."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The Sentinel target of `url`, or None for a plain Redis URL. Raises ValueError when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SENTINEL_SCHEME:
        return None
    rest = rest.split("?", 1)[0]
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    sentinels = []
    for part in netloc.split(","):
        host, colon, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host or (colon and not port.isdigit()):
            raise ValueError(f"bad Sentinel address {part!r} in REDIS_URL")
        sentinels.append((host.strip("[]"), int(port) if colon else DEFAULT_SENTINEL_PORT))
    segments = [s for s in path.split("/") if s]
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("a Sentinel REDIS_URL is redis+sentinel://host:port[,host:port…]/service[/db]")
    db = int(segments[1]) if len(segments) == 2 else 0
    return SentinelTarget(tuple(sentinels), unquote(segments[0]), db, username, password)


class SafeSentinel(Sentinel):
    """redis-py's Sentinel manager, with `discover_master` safe for concurrent callers.

    redis-py (5.x) moves the Sentinel that answered to the front of its list with an index taken
    before its `await`: two concurrent look-ups (every connection opened during a failover makes one)
    can then duplicate one Sentinel in the list and drop another, which is never asked again nor
    closed. Here the index is taken after the answer."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors = []
        for sentinel in list(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()  # type: ignore[no-untyped-call]
            except (ConnectionError, TimeoutError) as exc:
                errors.append(f"{sentinel} - {exc!r}")
                continue
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                index = self.sentinels.index(sentinel)
                self.sentinels[0], self.sentinels[index] = sentinel, self.sentinels[0]
                return state["ip"], int(state["port"])
        raise MasterNotFoundError(f"No master found for {service_name!r} : {', '.join(errors)}")


def harden(client: Redis) -> None:
    """Give a `master_for` client built elsewhere (arq's worker pool) the race-free manager."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool) and type(pool.sentinel_manager) is Sentinel:
        pool.sentinel_manager.__class__ = SafeSentinel


@dataclass(frozen=True)
class RedisClients:
    """The clients of one process: `main` decodes replies (cache, bus, locks, pub/sub listener);
    `arq` is arq's bytes client for the job queue (it stores pickled jobs)."""

    main: Redis
    arq: ArqRedis
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        """Close everything, even when closing one part fails (a connection to a dead primary)."""
        results = await asyncio.gather(self.arq.aclose(), self.main.aclose(), return_exceptions=True)
        if self.sentinel is not None:
            await close_sentinels(self.sentinel)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def clients(url: str, *, timeout_s: float, health_check_interval_s: int = 30) -> RedisClients:
    """Build (without connecting) the decoding client and arq's bytes client for `url`."""
    timeouts: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    target = parse_sentinel_url(url)
    if target is None:
        main = Redis.from_url(url, decode_responses=True, health_check_interval=health_check_interval_s, **timeouts)
        arq_pool = ConnectionPool.from_url(url, **timeouts)
        arq = ArqRedis(arq_pool, default_queue_name=keys.QUEUE)
        arq.auto_close_connection_pool = True
        return RedisClients(main, arq)
    sentinel = SafeSentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs=timeouts,
        db=target.db,
        username=target.username,
        password=target.password,
        **timeouts,
    )
    main = sentinel.master_for(
        target.service, redis_class=Redis, decode_responses=True, health_check_interval=health_check_interval_s
    )
    arq = sentinel.master_for(target.service, redis_class=ArqRedis)
    arq.default_queue_name = keys.QUEUE
    return RedisClients(main, arq, sentinel)


def arq_settings(url: str) -> RedisSettings:
    """arq's `RedisSettings` for `url` (the worker builds its own pool from it)."""
    target = parse_sentinel_url(url)
    if target is None:
        return RedisSettings.from_dsn(url)
    return RedisSettings(
        host=list(target.sentinels),
        database=target.db,
        username=target.username,
        password=target.password,
        sentinel=True,
        sentinel_master=target.service,
    )


async def close_sentinels(sentinel_or_client: Sentinel | Redis) -> None:
    """Close the connections a Sentinel manager keeps to the Sentinels themselves (closing a
    `master_for` client closes only its data connections). Accepts the manager or such a client."""
    if isinstance(sentinel_or_client, Sentinel):
        manager = sentinel_or_client
    else:
        pool = sentinel_or_client.connection_pool
        if not isinstance(pool, SentinelConnectionPool):
            return
        manager = pool.sentinel_manager
    await asyncio.gather(*(client.aclose() for client in manager.sentinels), return_exceptions=True)
