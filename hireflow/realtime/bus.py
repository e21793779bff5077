"""The realtime bus on Redis: ordered, retained, fanned out to every web instance.

Publishing runs one Lua script per topic that, atomically, increments the topic's sequence number,
appends the event to the topic's retained log (a Redis stream whose entry id is the sequence
number) and PUBLISHes it, so every instance sees one order. The log keeps at least
`rt_retention_events` events and at least `rt_retention_s` of them, up to `rt_log_max_events`.
A topic's `epoch` names one life of its counter: when Redis loses the counter, a new epoch starts
and resuming clients are told to reset. The same happens, on purpose, when an event could not be
published (`restart`): its topic's log no longer tells the whole story, so every subscriber and every
resuming client must start over from a snapshot.

Each web process holds one pub/sub subscription (`listen`), pings it every `rt_bus_heartbeat_s`
and reconnects when no answer comes; after a reconnect its subscriber repairs what it missed from
the retained logs.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from hireflow import keys, replies
from hireflow.pubsub import ReconnectHandler, Subscriber
from hireflow.settings import Settings

log = logging.getLogger(__name__)

# Every script below starts with this: KEYS[1] is the topic's meta hash (epoch, seq, node), KEYS[2] its
# log, ARGV[1] a fresh random epoch. A new epoch always starts with an empty log and seq 0.
# `node` is the replication id of the Redis that started the epoch. A replica promoted by Sentinel (or
# a restarted primary, in general) has a new replication id, and may lack the last writes of the old
# primary (replication is asynchronous): its counter may be behind what subscribers already saw, so
# reusing it would hand out sequence numbers twice. Any topic touched on such a node starts a new epoch.
_EPOCH = """
local node = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
local function start_epoch()
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0, 'node', node)
  return ARGV[1]
end
local function current_epoch()
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if epoch and redis.call('HGET', KEYS[1], 'node') == node then return epoch end
  return nil
end
"""

# ARGV: epoch, channel, topic, body, now ms, retention ms, retention events, max events, ttl s, and,
# with a gate (KEYS[3], the session's hash of the last change published per topic), the change's ev and
# the gate's ttl s. An event not newer than the gate's entry for this topic is dropped: seq -1.
_PUBLISH = (
    _EPOCH
    + """
if KEYS[3] then
  local last = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
  if tonumber(ARGV[10]) <= last then return {redis.call('HGET', KEYS[1], 'epoch') or '', -1} end
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[10])
  redis.call('EXPIRE', KEYS[3], ARGV[11])
end
local epoch = current_epoch() or start_epoch()
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'b', ARGV[4], 't', ARGV[5])
local cutoff = tonumber(ARGV[5]) - tonumber(ARGV[6])
for i = 1, 3 do
  local len = redis.call('XLEN', KEYS[2])
  if len <= tonumber(ARGV[7]) then break end
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if len <= tonumber(ARGV[8]) and tonumber(first[2][4]) >= cutoff then break end
  redis.call('XDEL', KEYS[2], first[1])
end
if tonumber(ARGV[9]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('EXPIRE', KEYS[2], ARGV[9])
end
redis.call('PUBLISH', ARGV[2], epoch .. ' ' .. ARGV[3] .. ' ' .. seq .. ' ' .. ARGV[4])
return {epoch, seq}
"""
)

# ARGV: epoch, ttl s.
_META = (
    _EPOCH
    + """
local epoch = current_epoch()
if not epoch then
  epoch = start_epoch()
  if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
return {epoch, redis.call('HGET', KEYS[1], 'seq')}
"""
)

# ARGV: epoch, control channel, notice, ttl s.
_RESTART = (
    _EPOCH
    + """
start_epoch()
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
"""
)

RESTART_TOPIC = "restart_topic"
"""Control message: every instance resets its subscribers of the topic (a new epoch started)."""


@dataclass(frozen=True)
class BusEvent:
    epoch: str
    topic: str
    seq: int
    body: bytes


def parse_message(data: bytes | str) -> BusEvent:
    raw = replies.data(data)
    epoch, topic, seq, body = raw.split(b" ", 3)
    return BusEvent(epoch.decode(), topic.decode(), int(seq), body)


class Bus:
    """Publishing and reading topics; works with a decoding or a bytes Redis client alike."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._publish = redis.register_script(_PUBLISH)
        self._meta = redis.register_script(_META)
        self._restart = redis.register_script(_RESTART)

    def _ttl_s(self, topic: str) -> int:
        return 0 if topic == "lobby" else self._settings.rt_session_topic_ttl_s

    async def publish(self, topic: str, body: bytes, gate: tuple[str, int] | None = None) -> tuple[str, int]:
        """Publish `body` to `topic`: its (epoch, seq), or seq -1 when `gate` = (session id, ev) shows
        that a change at least as new was already published to this topic."""
        s = self._settings
        topic_keys = [keys.RT_META + topic, keys.RT_LOG + topic]
        gate_args: list[str | int] = []
        if gate is not None and gate[1] > 0:
            topic_keys.append(keys.RT_GATE + gate[0])
            gate_args = [gate[1], s.rt_session_topic_ttl_s]
        epoch, seq = await self._publish(
            keys=topic_keys,
            args=[
                secrets.token_hex(6),
                keys.RT_EVENTS,
                topic,
                body,
                int(time.time() * 1000),
                int(s.rt_retention_s * 1000),
                s.rt_retention_events,
                s.rt_log_max_events,
                self._ttl_s(topic),
                *gate_args,
            ],
        )
        return replies.text(epoch), int(seq)

    async def restart(self, topic: str) -> None:
        """Start a new epoch of `topic` (an empty log) and tell every instance to reset its subscribers."""
        notice = orjson.dumps({"type": RESTART_TOPIC, "topic": topic})
        await self._restart(
            keys=[keys.RT_META + topic, keys.RT_LOG + topic],
            args=[secrets.token_hex(6), keys.RT_CONTROL, notice, self._ttl_s(topic)],
        )

    async def meta(self, topic: str) -> tuple[str, int]:
        """The topic's current epoch and last sequence number (starting a new epoch if it has none)."""
        epoch, seq = await self._meta(
            keys=[keys.RT_META + topic, keys.RT_LOG + topic], args=[secrets.token_hex(6), self._ttl_s(topic)]
        )
        return replies.text(epoch), int(seq)

    async def replay(self, topic: str, after: int, upto: int) -> list[tuple[int, bytes]] | None:
        """Events `after+1 … upto` in order, or None when some of them are no longer retained."""
        if upto <= after:
            return []
        entries = await self._redis.xrange(keys.RT_LOG + topic, min=f"{after + 1}-0", max=f"{upto}-0")
        events = [
            (int(replies.text(entry_id).split("-")[0]), replies.data(fields[b"b"] if b"b" in fields else fields["b"]))
            for entry_id, fields in entries
        ]
        if len(events) != upto - after or (events and events[0][0] != after + 1):
            return None
        return events

    async def control(self, message: bytes) -> None:
        await self._redis.publish(keys.RT_CONTROL, message)


EventHandler = Callable[[BusEvent], Awaitable[None]]
ControlHandler = Callable[[bytes], Awaitable[None]]


class Listener:
    """The process's one subscription to the bus (events and control messages), kept alive by
    hireflow/pubsub.py."""

    def __init__(self, redis: Redis, *, heartbeat_s: float) -> None:
        channels = (keys.RT_EVENTS, keys.RT_CONTROL)
        self._subscriber = Subscriber(redis, channels, heartbeat_s=heartbeat_s, name="realtime bus")

    @property
    def connected(self) -> bool:
        return self._subscriber.connected

    async def wait_connected(self, timeout_s: float) -> bool:
        return await self._subscriber.wait_connected(timeout_s)

    def stop(self) -> None:
        self._subscriber.stop()

    async def run(self, on_event: EventHandler, on_control: ControlHandler, on_reconnect: ReconnectHandler) -> None:
        async def on_message(channel: str, data: bytes) -> None:
            if channel == keys.RT_EVENTS:
                await on_event(parse_message(data))
            elif channel == keys.RT_CONTROL:
                await on_control(data)

        await self._subscriber.run(on_message, on_reconnect)
