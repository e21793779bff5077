"""Pad traffic between web instances over Redis pub/sub (one binary channel, at-most-once).

Pub/sub may drop messages (a reconnect, a Redis restart). Nothing is lost for that: an update is in
MongoDB before it is published, each carries its writer's sequence numbers, and an instance that sees a
gap, or whose subscription reconnects, reloads the pad from MongoDB (see rooms.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hireflow import keys

log = logging.getLogger(__name__)


class RelayKind(Enum):
    UPDATE = b"U"
    AWARENESS = b"A"
    FREEZE = b"F"


@dataclass(frozen=True)
class RelayMessage:
    kind: RelayKind
    pad: str
    src: str
    first: int
    last: int
    payload: bytes

    def encode(self) -> bytes:
        head = b" ".join(
            [self.kind.value, self.pad.encode(), self.src.encode(), str(self.first).encode(), str(self.last).encode()]
        )
        return head + b" " + self.payload

    @classmethod
    def decode(cls, data: bytes) -> RelayMessage:
        kind, pad, src, first, last, payload = data.split(b" ", 5)
        return cls(RelayKind(kind), pad.decode(), src.decode(), int(first), int(last), payload)


MessageHandler = Callable[[RelayMessage], Awaitable[None]]
ReconnectHandler = Callable[[], Awaitable[None]]


class Relay:
    """Publishes pad messages and runs the process's one subscription to them."""

    RECONNECT_DELAY_S = 0.5

    def __init__(self, redis: Redis, *, heartbeat_s: float) -> None:
        self._redis = redis  # a bytes (non-decoding) client
        self._heartbeat_s = heartbeat_s
        self.connected = False
        self._up = asyncio.Event()

    async def publish(self, messages: list[RelayMessage]) -> None:
        """One round trip for every message; raises RedisError when Redis is unreachable."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(keys.PAD_RELAY, message.encode())
            await pipe.execute()

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    async def run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Listen forever; after every reconnect (not the first connect) call `on_reconnect`."""
        first = True
        while True:
            try:
                await self._session(on_message, None if first else on_reconnect)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected:
                    log.warning("pad relay connection lost: %r", exc)
            except Exception:
                log.exception("pad relay listener failed")
            self.connected = False
            first = False
            await asyncio.sleep(self.RECONNECT_DELAY_S)

    async def _session(self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(keys.PAD_RELAY)
            self.connected = True
            self._up.set()
            if on_reconnect is not None:
                log.info("pad relay reconnected; repairing open pads from MongoDB")
                await on_reconnect()
            last_heard = time.monotonic()
            next_ping = last_heard + self._heartbeat_s
            while True:
                message = await pubsub.get_message(timeout=min(self._heartbeat_s, 1.0))
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    if message["type"] in (b"message", "message"):
                        try:
                            decoded = RelayMessage.decode(message["data"])
                        except ValueError:
                            log.warning("pad relay: ignoring a malformed message")
                        else:
                            await on_message(decoded)
                if now >= next_ping:
                    await pubsub.ping()
                    next_ping = now + self._heartbeat_s
                if now - last_heard > 2 * self._heartbeat_s:
                    raise TimeoutError("no answer on the pad relay connection")
        finally:
            self.connected = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]
