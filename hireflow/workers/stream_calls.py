"""Run a job's Stream work under the shared rate limit, turning failures into arq retries."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry

from hireflow.stream.gateway import StreamUnavailable
from hireflow.workers.deps import WorkerDeps
from hireflow.workers.retry import backoff_s

log = logging.getLogger(__name__)

T = TypeVar("T")


async def call_stream(ctx: dict[str, Any], d: WorkerDeps, what: str, work: Callable[[], Awaitable[T]]) -> T:
    """`await work()`, unless Stream is rate limited (then retry after the pause). A transient failure
    becomes `Retry` with backoff, or with Stream's reset time after a 429. `StreamRejected` passes through."""
    pause = await d.throttle.wait_s()
    if pause > 0:
        raise Retry(defer=backoff_s(1, pause))
    try:
        return await work()
    except StreamUnavailable as exc:
        job_try = int(ctx.get("job_try", 1))
        if exc.retry_after_s is not None:
            await d.throttle.hold(exc.retry_after_s)
        delay = backoff_s(job_try, exc.retry_after_s)
        log.info("%s: %s; retrying in %.1fs (try %d)", what, exc, delay, job_try)
        raise Retry(defer=delay) from exc
