"""Around every job run: restore the enqueuing request's id, count the outcome, write one log line."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry

from hireflow.observability import REQUEST_ID, Metrics

log = logging.getLogger("hireflow.jobs")

Job = Callable[..., Awaitable[Any]]


def instrumented(job: Job, name: str, metrics: Metrics) -> Job:
    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *, request_id: str | None = None, **kwargs: Any) -> Any:
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await job(ctx, **kwargs)
            outcome = "succeeded"
            return result
        except Retry:
            outcome = "retried"
            raise
        finally:
            metrics.jobs.labels(name, outcome).inc()
            duration_ms = (time.perf_counter() - started) * 1000
            log.info(
                "job %s %s %.1fms",
                name,
                outcome,
                duration_ms,
                extra={
                    "job": name,
                    "outcome": outcome,
                    "duration_ms": round(duration_ms, 2),
                    "try": ctx.get("job_try"),
                    "request_id": request_id,
                    **kwargs,
                },
            )
            REQUEST_ID.reset(token)

    return run
