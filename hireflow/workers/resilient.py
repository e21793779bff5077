"""An arq `Worker` that outlives its dependencies' outages.

Stock arq ends `Worker.main()` at the first Redis error in its poll loop (python-arq/arq#435, #498):
every worker exits when Redis blinks. Here the poll loop logs the outage once, backs off (0.25 s
doubling to 5 s) and resumes on its own when Redis answers again. What arq was doing when the error
struck is safe to drop: a job whose start or finish failed keeps its in-progress key until it expires
and then runs again (every job here is idempotent), and the reconciler re-enqueues whatever is left.
MongoDB outages never reach this loop: a job that cannot reach the DB fails, and the reconciler
retries its work later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import replace
from typing import Any

from arq import Worker
from arq.connections import create_pool
from redis.exceptions import RedisError

from hireflow import keys
from hireflow.waiting import FIRST_DELAY_S, MAX_DELAY_S, wait_for

log = logging.getLogger(__name__)

OUTAGE_ERRORS = (RedisError, OSError, TimeoutError)


class ResilientWorker(Worker):
    def __init__(self, *args: Any, startup_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._startup_timeout_s = startup_timeout_s
        self._outage_since: float | None = None
        self._delay_s = FIRST_DELAY_S
        self.outages = 0

    async def main(self) -> None:
        if self._pool is None:
            assert self.redis_settings is not None, "built with a queue name and Redis settings"
            settings = self.redis_settings
            self._pool = await wait_for(
                "Redis",
                # arq's own retries off (conn_retries=0): this loop owns the backoff and says what it waits for
                lambda: create_pool(replace(settings, conn_retries=0), default_queue_name=keys.QUEUE),
                timeout_s=self._startup_timeout_s,
            )
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except OUTAGE_ERRORS as exc:
            await self._ride_out(exc)
        else:
            if self._outage_since is not None:
                log.warning("Redis answers again after %.1fs; worker resumed", time.monotonic() - self._outage_since)
                self._outage_since, self._delay_s = None, FIRST_DELAY_S

    async def _ride_out(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.outages += 1
            log.warning("Redis unreachable (%r); the worker keeps retrying", exc)
        await asyncio.sleep(self._delay_s)
        self._delay_s = min(self._delay_s * 2, MAX_DELAY_S)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except OUTAGE_ERRORS:
            # arq took a job slot for the job it was starting (semaphore and counter) and raised before
            # handing it to a task, which is what gives slots back: give it back here, or every outage
            # would leak one until the worker could take no job at all.
            self._release_sem_dec_counter_on_complete()
            raise

    async def close(self) -> None:
        """arq's `Worker.close`, but a job cancelled at shutdown or Redis being down does not abort it
        (arq gathers its job tasks without return_exceptions, and deletes its health key first): the
        shutdown hook always runs and the process exits cleanly."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        try:
            await self.pool.delete(self.health_check_key)
        except OUTAGE_ERRORS as exc:
            log.warning("worker closing while Redis is unreachable: %r", exc)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.close(close_connection_pool=True)
        self._pool = None
