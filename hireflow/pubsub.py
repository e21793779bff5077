"""One Redis pub/sub subscription kept alive: pinged every `heartbeat_s`, reconnected when no answer
comes within two intervals or the connection fails, and the caller told after every reconnect (it
may have missed messages meanwhile: pub/sub delivers at most once). The realtime bus
(realtime/bus.py `Listener`) and the pad relay (pad/relay.py) each hold one.

At shutdown it is stopped (`stop`: `run` returns within `POLL_S`), not cancelled: a cancellation that
lands inside redis-py's `get_message` can be swallowed, and the listener would reconnect for ever."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hireflow import replies

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]
"""Called with each message's channel and data, in order."""
ReconnectHandler = Callable[[], Awaitable[None]]
POLL_S = 0.1
"""Longest wait for a message before the loop looks at its stop flag (and its heartbeat) again."""


class Subscriber:
    RECONNECT_DELAY_S = 0.5

    def __init__(self, redis: Redis, channels: tuple[str, ...], *, heartbeat_s: float, name: str) -> None:
        self._redis = redis
        self._channels = channels
        self._heartbeat_s = heartbeat_s
        self._name = name
        """For the log lines: "realtime bus", "pad relay"."""
        self.connected = False
        self._up = asyncio.Event()
        self._stopped = False

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        """Make `run` return after the message it is handling, or its current wait (`POLL_S`)."""
        self._stopped = True

    async def run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Listen until stopped; after every reconnect (not the first connect) call `on_reconnect`."""
        first = True
        while not self._stopped:
            try:
                await self._session(on_message, None if first else on_reconnect)
            except asyncio.CancelledError:
                self.connected = False
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected:
                    log.warning("%s connection lost: %r", self._name, exc)
            except Exception:
                log.exception("%s listener failed", self._name)
            self.connected = False
            first = False
            if not self._stopped:
                await asyncio.sleep(self.RECONNECT_DELAY_S)

    async def _session(self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(*self._channels)
            self.connected = True
            self._up.set()
            if on_reconnect is not None:
                log.info("%s reconnected; repairing what it may have missed", self._name)
                await on_reconnect()
            last_heard = time.monotonic()
            next_ping = last_heard + self._heartbeat_s
            while not self._stopped:
                message = await pubsub.get_message(timeout=min(self._heartbeat_s, POLL_S))
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    if message["type"] in ("message", b"message"):
                        await on_message(replies.text(message["channel"]), replies.data(message["data"]))
                if now >= next_ping:
                    await pubsub.ping()
                    next_ping = now + self._heartbeat_s
                if now - last_heard > 2 * self._heartbeat_s:
                    raise TimeoutError(f"no answer on the {self._name} connection")
        finally:
            self.connected = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]
