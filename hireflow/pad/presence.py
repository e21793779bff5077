"""Who has the pad open, on every instance: `pad.presence` events on the `session:<id>` topic.

Each instance counts its own pad sockets per (session, role). When its count for one goes 0 → 1 it
takes a lease in Redis (`keys.PAD_OPEN_LEASES`: member `"<session> <role> <instance>"`, score the
lease's expiry in Redis time, so instance clocks do not matter); 1 → 0 gives it back. A hash counts
the instances holding a lease per (session, role); when a count goes 0 ↔ 1 the session's state
changed, and the script that changed it returns the new state with a version that only grows.

Leases last 2/3 of `pad_presence_timeout_s` and are renewed every 1/6 of it; every instance sweeps
the expired ones as often, so the sockets of an instance that died stop counting within the timeout.
A renewal re-takes a lease that was swept or lost (a Redis restart), and re-announces it.

Changes go to Redis from one task, in order: it reconciles what this instance holds with what it told
Redis, so an open quickly followed by a close can never reach Redis the other way round. Changes are
published through the realtime sink with the version as gate: a late publish of an older state is
dropped, a failed one resets the topic's subscribers to a snapshot, and the snapshot carries the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hireflow import keys, replies
from hireflow.realtime import protocol
from hireflow.realtime.publisher import RealtimeSink

log = logging.getLogger(__name__)

Role = Literal["host", "participant"]
ROLES: tuple[Role, ...] = ("host", "participant")
EVENT = "pad.presence"
RETRY_S = 0.5
_CHUNK = 500
_SWEEP_MAX = 1000

# KEYS[1]: the leases, KEYS[2]: the counts. `state` bumps and returns a session's state:
# {session, host 0/1, participant 0/1, version}; the version is max(previous + 1, now in µs), so it
# keeps growing even after the hash lost the session (every count back to 0 deletes its fields).
_COMMON = """
local function state(session)
  local vf = session .. ' v'
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local v = string.format('%.0f', math.max((tonumber(redis.call('HGET', KEYS[2], vf)) or 0) + 1, now_us))
  local host = redis.call('HEXISTS', KEYS[2], session .. ' host')
  local participant = redis.call('HEXISTS', KEYS[2], session .. ' participant')
  if host == 0 and participant == 0 then redis.call('HDEL', KEYS[2], vf) else redis.call('HSET', KEYS[2], vf, v) end
  return {session, host, participant, v}
end
local function release(member)
  local session, role = string.match(member, '^(%S+) (%S+) ')
  if not session then return nil end
  if redis.call('HINCRBY', KEYS[2], session .. ' ' .. role, -1) <= 0 then
    redis.call('HDEL', KEYS[2], session .. ' ' .. role)
    return state(session)
  end
  return nil
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: lease ms, instance, then (session, role, held "1"/"0") triples. Returns the changed states.
_SET = (
    _COMMON
    + """
local expiry = now_ms() + tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV, 3 do
  local member = ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[2]
  if ARGV[i + 2] == '1' then
    if redis.call('ZADD', KEYS[1], expiry, member) == 1
       and redis.call('HINCRBY', KEYS[2], ARGV[i] .. ' ' .. ARGV[i + 1], 1) == 1 then
      out[#out + 1] = state(ARGV[i])
    end
  elseif redis.call('ZREM', KEYS[1], member) == 1 then
    local change = release(member)
    if change then out[#out + 1] = change end
  end
end
return out
"""
)

# ARGV: at most this many expired leases. Returns the changed states.
_SWEEP = (
    _COMMON
    + """
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))) do
  redis.call('ZREM', KEYS[1], member)
  local change = release(member)
  if change then out[#out + 1] = change end
end
return out
"""
)


@dataclass(frozen=True)
class Change:
    session_id: str
    host: bool
    participant: bool
    version: int

    def body(self) -> bytes:
        """The published event body, as `{"event": …, …}` like every event of the topic."""
        return orjson.dumps({"event": EVENT, "pad": {"host": self.host, "participant": self.participant}})


class PadPresence:
    def __init__(self, redis: Redis, realtime: RealtimeSink, instance: str, *, timeout_s: float) -> None:
        self._redis = redis
        self._realtime = realtime
        self._instance = instance
        self._lease_ms = int(timeout_s * 2 / 3 * 1000)
        self._renew_s = timeout_s / 6
        self._set = redis.register_script(_SET)
        self._sweep = redis.register_script(_SWEEP)
        self._counts: dict[tuple[str, Role], int] = {}
        """This instance's open pad sockets per (session, role)."""
        self._dirty: set[tuple[str, Role]] = set()
        self._wake = asyncio.Event()
        self._stopped = False

    def stop(self) -> None:
        """End `run_forever` after what it is doing. Cancelling alone is not enough: a cancellation that
        lands inside a Redis call can come out of redis-py as a connection error, which is retried."""
        self._stopped = True
        self._wake.set()

    def opened(self, session_id: str, role: Role) -> None:
        key = (session_id, role)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] == 1:
            self._dirty.add(key)
            self._wake.set()

    def closed(self, session_id: str, role: Role) -> None:
        key = (session_id, role)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
            return
        self._counts.pop(key, None)
        self._dirty.add(key)
        self._wake.set()

    async def read(self, session_id: str) -> dict[str, bool]:
        """The session's state as the snapshot of its topic carries it."""
        fields = [f"{session_id} {role}" for role in ROLES]
        counts = await self._redis.hmget(keys.PAD_OPEN_COUNTS, fields)  # type: ignore[misc]  # redis-py types sync and async alike
        return {
            role: count is not None and int(replies.text(count)) > 0 for role, count in zip(ROLES, counts, strict=True)
        }

    async def run_forever(self) -> None:
        """Tell Redis what changed here as it changes; renew and sweep leases every 1/6 of the timeout."""
        loop = asyncio.get_running_loop()
        next_renew = loop.time()
        while not self._stopped:
            # Not asyncio.wait_for: on 3.11 it swallows a cancellation that lands as the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_renew - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            renew = loop.time() >= next_renew
            if renew:
                next_renew = loop.time() + self._renew_s
            dirty, self._dirty = self._dirty, set()
            try:
                changes = await self._apply(dirty | set(self._counts) if renew else dirty)
                if renew:
                    changes += await self._expire()
            except (RedisError, OSError) as exc:
                log.warning("pad presence not recorded, retrying: %r", exc)
                self._dirty |= dirty
                await asyncio.sleep(RETRY_S)
                self._wake.set()
                continue
            await self._announce(changes)

    async def release_all(self) -> None:
        """On shutdown (the sockets closed): give back every lease this instance still has in Redis."""
        held = set(self._counts) | self._dirty
        self._counts.clear()
        self._dirty.clear()
        try:
            await self._announce(await self._apply(held))
        except (RedisError, OSError) as exc:
            log.warning("pad presence leases not released (they will expire): %r", exc)

    async def _apply(self, held: set[tuple[str, Role]]) -> list[Change]:
        entries = sorted(held)
        changes: list[Change] = []
        for at in range(0, len(entries), _CHUNK):
            args: list[str | int] = [self._lease_ms, self._instance]
            for session_id, role in entries[at : at + _CHUNK]:
                args += [session_id, role, "1" if self._counts.get((session_id, role), 0) > 0 else "0"]
            changes += _changes(await self._set(keys=[keys.PAD_OPEN_LEASES, keys.PAD_OPEN_COUNTS], args=args))
        return changes

    async def _expire(self) -> list[Change]:
        return _changes(await self._sweep(keys=[keys.PAD_OPEN_LEASES, keys.PAD_OPEN_COUNTS], args=[_SWEEP_MAX]))

    async def _announce(self, changes: list[Change]) -> None:
        for change in changes:
            topic = protocol.session_topic(change.session_id)
            gate = ("pad:" + change.session_id, change.version)
            await self._realtime.publish_body(EVENT, [topic], change.body(), gate)


def _changes(reply: list[Any]) -> list[Change]:
    """The scripts' changed states: [session, host 0/1, participant 0/1, version as text]."""
    return [Change(replies.text(s), bool(h), bool(p), int(replies.text(v))) for s, h, p, v in reply]
