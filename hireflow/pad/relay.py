"""Pad traffic between web instances over Redis pub/sub (one binary channel, at-most-once).

Everything one `publish` call is given goes out as one pub/sub message (a stored batch's updates for
every pad in it, say), so a receiving instance pays redis-py's per-message cost per batch, not per pad.
Each such message starts with its publisher's name, so an instance skips its own whole, without
decoding it (every instance hears everything published on the channel, its own messages included).
The name is itself a message that the version before it decodes and ignores (`ORIGIN_PAD`).

Pub/sub may drop messages (a reconnect, a Redis restart). Nothing is lost for that: an update is in
MongoDB before it is published, each carries its writer's sequence numbers, and an instance that sees a
gap, or whose subscription reconnects, reloads the pad from MongoDB (see rooms.py).
"""

from __future__ import annotations

import logging
import secrets
import struct
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


_LENGTH = struct.Struct(">I")
ORIGIN_BYTES = 16
"""A publisher's name is this many hex digits."""
ORIGIN_PAD = "-"
"""A pack's first message names its publisher: an awareness message of the pad `-` (no pad has that
key), sent by that name, with nothing in it. So the version before names existed, which reads the same
framing, decodes it and ignores it (no room is `-`) during a rolling deploy; and a pack of that
version, which has no name, is still read here."""
PACK_MAX_BYTES = 512 * 1024
"""A pack is closed past this size (a pub/sub message should stay small next to Redis's buffers)."""


def new_origin() -> bytes:
    """A publisher's name: `ORIGIN_BYTES` random hex digits."""
    return secrets.token_hex(ORIGIN_BYTES // 2).encode()


def _name(origin: bytes) -> bytes:
    """A pack's first message, framed: the awareness message of `ORIGIN_PAD` sent by `origin`."""
    assert len(origin) == ORIGIN_BYTES
    encoded = RelayMessage(RelayKind.AWARENESS, ORIGIN_PAD, origin.decode(), 0, 0, b"").encode()
    return _LENGTH.pack(len(encoded)) + encoded


_PLACEHOLDER = b"o" * ORIGIN_BYTES
_NAME_HEAD = _name(_PLACEHOLDER).partition(_PLACEHOLDER)[0]
"""What every framed name holds before the publisher's name (its length, kind and pad)."""


def pack(messages: list[RelayMessage], origin: bytes) -> list[bytes]:
    """Messages as few pub/sub payloads: each a run of (4-byte length, encoded message), the first
    message naming the publisher (`ORIGIN_PAD`)."""
    name = _name(origin)
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for message in messages:
        encoded = message.encode()
        if parts and size + len(encoded) > PACK_MAX_BYTES:
            out.append(b"".join(parts))
            parts, size = [], 0
        if not parts:
            parts.append(name)
        parts += (_LENGTH.pack(len(encoded)), encoded)
        size += 4 + len(encoded)
    if parts:
        out.append(b"".join(parts))
    return out


def origin_of(data: bytes) -> bytes | None:
    """The publisher's name at the head of a payload made by `pack`, without decoding it (None for a
    pack of a version that did not name it)."""
    if not data.startswith(_NAME_HEAD):
        return None
    return data[len(_NAME_HEAD) : len(_NAME_HEAD) + ORIGIN_BYTES]


def unpack(data: bytes) -> list[RelayMessage]:
    """The messages of one payload made by `pack` (not the name); ValueError if it is not one."""
    out = []
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("truncated relay pack")
        (length,) = _LENGTH.unpack_from(data, at)
        end = at + 4 + length
        if end > len(data):
            raise ValueError("truncated relay pack")
        message = RelayMessage.decode(data[at + 4 : end])
        if message.pad != ORIGIN_PAD:
            out.append(message)
        at = end
    return out


MessageHandler = Callable[[RelayMessage], Awaitable[None]]


class Relay:
    """Publishes pad messages and runs the process's one subscription to them (hireflow/pubsub.py)."""

    def __init__(self, redis: Redis, *, heartbeat_s: float) -> None:
        self._redis = redis  # a bytes (non-decoding) client
        self.origin = new_origin()
        self._subscriber = Subscriber(redis, (keys.PAD_RELAY,), heartbeat_s=heartbeat_s, name="pad relay")

    @property
    def connected(self) -> bool:
        return self._subscriber.connected

    async def publish(self, messages: list[RelayMessage]) -> None:
        """One round trip, and one pub/sub message per `PACK_MAX_BYTES`, for every message; raises
        RedisError when Redis is unreachable."""
        payloads = pack(messages, self.origin)
        if not payloads:
            return
        if len(payloads) == 1:
            await self._redis.publish(keys.PAD_RELAY, payloads[0])
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(keys.PAD_RELAY, payload)
            await pipe.execute()

    async def wait_connected(self, timeout_s: float) -> bool:
        return await self._subscriber.wait_connected(timeout_s)

    def stop(self) -> None:
        self._subscriber.stop()

    async def run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Listen forever; after every reconnect (not the first connect) call `on_reconnect`."""

        async def on_data(_channel: str, data: bytes) -> None:
            if origin_of(data) == self.origin:
                return  # this instance's own: applied and forwarded here before it was published
            try:
                decoded = unpack(data)
            except ValueError:
                log.warning("pad relay: ignoring a malformed message")
                return
            for message in decoded:
                await on_message(message)

        await self._subscriber.run(on_data, on_reconnect)
