"""Who may start a run now: per user 1 in flight and 10 a minute, per session 2 in flight (settings).

One Lua script checks and takes all three at once, so concurrent requests cannot slip past a limit
and a request refused by one limit uses up none of the others. In-flight runs are leases in a sorted
set scored by when they lapse: a run's end releases it, and a lease nobody released (its run lost
with everything that could have ended it) lapses by itself instead of blocking its user for good.
The minute is a sliding window over the runs started, so `Retry-After` is exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from hireflow import keys, replies
from hireflow.errors import TooManyRequests
from hireflow.settings import Settings

# KEYS: user in flight, session in flight, user recent. ARGV: now ms, lease end ms, run id,
# user max in flight, session max in flight, per-minute max, window ms.
_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return {'user', 0} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return {'session', 0} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {'rate', tonumber(oldest[2]) + tonumber(ARGV[7]) - now}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[3])
local ttl = tonumber(ARGV[2]) - now
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[7]))
return {'ok', 0}
"""

WINDOW_MS = 60_000
BUSY_RETRY_AFTER_S = 2
"""What `Retry-After` says when runs are in flight: a typical run's length (their end is not known)."""


@dataclass(frozen=True)
class RunQuota:
    in_flight_per_user: int
    in_flight_per_session: int
    per_user_per_minute: int
    lease_s: float


RUN_JOB_MARGIN_S = 3.0
"""A run's job outlives the engine's timeout by this much, so the run ends with that timeout's reason."""


def run_job_timeout_s(settings: Settings) -> float:
    return settings.piston_timeout_s + RUN_JOB_MARGIN_S


def stale_after_s(settings: Settings) -> float:
    """When a queued or running run counts as left behind: never before its job could have ended."""
    return max(settings.runs_stale_after_s, run_job_timeout_s(settings) + 2.0)


def quota(settings: Settings) -> RunQuota:
    return RunQuota(
        in_flight_per_user=settings.runs_in_flight_per_user,
        in_flight_per_session=settings.runs_in_flight_per_session,
        per_user_per_minute=settings.runs_per_user_per_minute,
        # Long enough for a run to go stale, be retried once and go stale again.
        lease_s=3 * stale_after_s(settings),
    )


class RunLimits:
    def __init__(self, redis: Redis, quota: RunQuota) -> None:
        self._redis = redis
        self._quota = quota
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, *, user_id: str, session_id: str, run_id: str) -> None:
        """Take a place for the run, or raise TooManyRequests saying which limit and how long to wait."""
        q = self._quota
        now_ms = int(time.time() * 1000)
        verdict, wait_ms = await self._admit(
            keys=[
                keys.RUNS_IN_FLIGHT_USER + user_id,
                keys.RUNS_IN_FLIGHT_SESSION + session_id,
                keys.RUNS_RECENT_USER + user_id,
            ],
            args=[
                now_ms,
                now_ms + int(q.lease_s * 1000),
                run_id,
                q.in_flight_per_user,
                q.in_flight_per_session,
                q.per_user_per_minute,
                WINDOW_MS,
            ],
        )
        verdict = replies.text(verdict)
        if verdict == "user":
            raise TooManyRequests(
                "You already have a run in progress; wait for it to finish"
                if q.in_flight_per_user == 1
                else f"You already have {q.in_flight_per_user} runs in progress; wait for one to finish",
                BUSY_RETRY_AFTER_S,
            )
        if verdict == "session":
            raise TooManyRequests(
                f"This session already has {q.in_flight_per_session} runs in progress; wait for one to finish",
                BUSY_RETRY_AFTER_S,
            )
        if verdict == "rate":
            wait_s = max(1, math.ceil(int(wait_ms) / 1000))
            raise TooManyRequests(
                f"Too many runs: at most {q.per_user_per_minute} per minute; try again in {wait_s} s", wait_s
            )

    async def release(self, *, user_id: str, session_id: str, run_id: str) -> None:
        """The run ended: free its places in flight (its place in the minute's count stays)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.RUNS_IN_FLIGHT_USER + user_id, run_id)
            pipe.zrem(keys.RUNS_IN_FLIGHT_SESSION + session_id, run_id)
            await pipe.execute()

    async def forget(self, *, user_id: str, session_id: str, run_id: str) -> None:
        """The run was never stored: undo its admission entirely."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.RUNS_IN_FLIGHT_USER + user_id, run_id)
            pipe.zrem(keys.RUNS_IN_FLIGHT_SESSION + session_id, run_id)
            pipe.zrem(keys.RUNS_RECENT_USER + user_id, run_id)
            await pipe.execute()
