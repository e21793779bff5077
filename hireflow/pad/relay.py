"""Pad traffic between web instances over Redis pub/sub (one binary channel, at-most-once).

Pub/sub may drop messages (a reconnect, a Redis restart). Nothing is lost for that: an update is in
MongoDB before it is published, each carries its writer's sequence numbers, and an instance that sees a
gap, or whose subscription reconnects, reloads the pad from MongoDB (see rooms.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis

from hireflow import keys
from hireflow.pubsub import ReconnectHandler, Subscriber

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


class Relay:
    """Publishes pad messages and runs the process's one subscription to them (hireflow/pubsub.py)."""

    def __init__(self, redis: Redis, *, heartbeat_s: float) -> None:
        self._redis = redis  # a bytes (non-decoding) client
        self._subscriber = Subscriber(redis, (keys.PAD_RELAY,), heartbeat_s=heartbeat_s, name="pad relay")

    @property
    def connected(self) -> bool:
        return self._subscriber.connected

    async def publish(self, messages: list[RelayMessage]) -> None:
        """One round trip for every message; raises RedisError when Redis is unreachable."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(keys.PAD_RELAY, message.encode())
            await pipe.execute()

    async def wait_connected(self, timeout_s: float) -> bool:
        return await self._subscriber.wait_connected(timeout_s)

    async def run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Listen forever; after every reconnect (not the first connect) call `on_reconnect`."""

        async def on_data(_channel: str, data: bytes) -> None:
            try:
                decoded = RelayMessage.decode(data)
            except ValueError:
                log.warning("pad relay: ignoring a malformed message")
                return
            await on_message(decoded)

        await self._subscriber.run(on_data, on_reconnect)
