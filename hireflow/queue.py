"""Enqueueing worker jobs, from the web process and from the workers themselves.

Job ids are deterministic (see keys.py), so enqueueing the same work twice is a no-op while the first
is queued or running. Jobs keep no result (`keep_result=0` in the worker), so once a job is done the
same id can be enqueued again, which is what lets the reconciler retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from hireflow import keys
from hireflow.events import SessionEvent
from hireflow.observability import REQUEST_ID, Metrics

log = logging.getLogger(__name__)

SYNC_SESSION = "sync_session"
UPSERT_STREAM_USER = "upsert_stream_user"
DELETE_STREAM_USER = "delete_stream_user"
EXECUTE_RUN = "execute_run"

ENQUEUE_TIMEOUT_S = 1.0


class JobQueue:
    def __init__(self, redis: ArqRedis, metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics

    async def sync_session(self, session_id: str, reason: str) -> bool:
        """Ask a worker to bring the session's Stream resources in line with its state."""
        job_id = keys.SESSION_JOB.format(session_id=session_id, reason=reason)
        return await self._enqueue(SYNC_SESSION, job_id, session_id=session_id)

    async def upsert_stream_user(self, clerk_id: str, stamp: int | None = None) -> bool:
        job_id = keys.STREAM_USER_JOB.format(clerk_id=clerk_id, action="upsert", stamp=stamp or time.time_ns())
        return await self._enqueue(UPSERT_STREAM_USER, job_id, clerk_id=clerk_id)

    async def delete_stream_user(self, clerk_id: str) -> bool:
        job_id = keys.STREAM_USER_JOB.format(clerk_id=clerk_id, action="delete", stamp=0)
        return await self._enqueue(DELETE_STREAM_USER, job_id, clerk_id=clerk_id)

    async def execute_run(self, run_id: str) -> bool:
        """Hand a queued code run to the first worker with a free slot (see workers/run_consumer.py);
        False when Redis could not be reached in time (the reconciler queues the run again)."""
        item = orjson.dumps({"run_id": run_id, "request_id": REQUEST_ID.get()})
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
                await self._redis.rpush(keys.RUNS_QUEUE, item)  # type: ignore[misc]  # redis-py types sync and async alike
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not queue run %s; the reconciler will catch up: %r", run_id, exc)
            self._count(EXECUTE_RUN, "enqueue_failed")
            return False
        self._count(EXECUTE_RUN, "enqueued")
        return True

    async def _enqueue(self, function: str, job_id: str, **kwargs: Any) -> bool:
        """True when queued (or already queued); False when Redis could not be reached in time."""
        # The request (or job) that asked for this work follows it into the worker's log lines.
        kwargs["request_id"] = REQUEST_ID.get()
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
                await self._redis.enqueue_job(function, _job_id=job_id, _queue_name=keys.QUEUE, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not enqueue %s (%s); the reconciler will catch up: %r", function, job_id, exc)
            self._count(function, "enqueue_failed")
            return False
        self._count(function, "enqueued")
        return True

    def _count(self, function: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.jobs.labels(function, outcome).inc()


class JobSink:
    """The workers' side of the domain-event seam: each session change asks for a Stream sync."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    async def publish(self, event: SessionEvent) -> bool:
        if event.cause in ("created", "joined", "ended"):
            await self._queue.sync_session(event.session_id, event.cause)
        # A lost enqueue is not retried from the outbox: the session's `streamDirty` flag already makes
        # the reconciler enqueue it (workers/reconcile.py).
        return True
