"""The workers' code-run queue: a Redis list each worker waits on with BLPOP, instead of an arq job.

A run is waited for by a person watching the Run button, so its pickup must not cost arq's poll
interval (0.1 s on average half of it) and per-job bookkeeping (a dozen Redis round trips, started one
job after another): here a queued run id is handed to a waiting worker the moment it is pushed, in
one round trip. Each worker takes a run only when it has a free slot (`worker_max_jobs`), so runs
queue in Redis, not in a busy worker. Nothing is acknowledged: a run lost with its worker stays
`running` in MongoDB, which is what the reconciler retries once, then fails (jobs/runs.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from redis.exceptions import RedisError

from hireflow import keys, redis_conn

log = logging.getLogger(__name__)

BLOCK_S = 1
"""How long one BLPOP waits (short, so a stop or a dead connection is noticed quickly)."""
OUTAGE_DELAY_S = 1.0
STOP_GRACE_S = 5.0
"""On shutdown, running runs get this long to finish before they are cancelled (then the reconciler)."""

Execute = Callable[..., Awaitable[Any]]


class RunConsumer:
    def __init__(self, redis_url: str, execute: Execute, ctx: dict[str, Any], *, concurrency: int) -> None:
        # Its own connection (plain or through Sentinel): BLPOP holds it, and it must not time out before
        # BLOCK_S does.
        self._conns = redis_conn.clients(redis_url, timeout_s=BLOCK_S + 5.0)
        self._redis = self._conns.arq
        self._execute = execute
        self._ctx = ctx
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._consume())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._running:
            _done, pending = await asyncio.wait(self._running, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self._conns.aclose()
        except (RedisError, OSError) as exc:  # closing must not keep the worker's other clients open
            log.warning("run queue connection not closed cleanly: %r", exc)

    async def _consume(self) -> None:
        outage = False
        while True:
            await self._slots.acquire()
            try:
                # redis-py types commands for its sync and async clients at once: this one is async.
                item = await cast(Awaitable[Any], self._redis.blpop([keys.RUNS_QUEUE], timeout=BLOCK_S))
            except (RedisError, OSError) as exc:
                self._slots.release()
                if not outage:
                    log.warning("run queue unreachable (%r); retrying", exc)
                outage = True
                await asyncio.sleep(OUTAGE_DELAY_S)
                continue
            except BaseException:
                self._slots.release()
                raise
            outage = False
            if item is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._one(item[1]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _one(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
            await self._execute(self._ctx, run_id=str(message["run_id"]), request_id=message.get("request_id"))
        except Exception:
            log.exception("code run from the queue failed: %r", raw[:200])
        finally:
            self._slots.release()
