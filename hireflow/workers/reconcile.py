"""The reconciler: every few seconds, re-enqueue the Stream sync of any session left behind.

A session is left behind when its last change is older than `reconcile_after_s` and no sync has
caught up with it: the enqueue was lost (Redis down during the request, a crash between the write
and the enqueue), a worker died mid-job, or a job ran out of tries. It is safe in every worker at
once: the job id is deterministic, so a second enqueue of the same session is a no-op.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from hireflow.timeutil import utcnow
from hireflow.workers.deps import deps

log = logging.getLogger(__name__)


async def reconcile(ctx: dict[str, Any]) -> int:
    d = deps(ctx)
    cutoff = utcnow() - timedelta(seconds=d.settings.reconcile_after_s)
    lagging = await d.sessions.lagging_stream(cutoff)
    for session_id in lagging:
        await d.queue.sync_session(str(session_id), "reconcile")
    if lagging:
        log.info("reconciler re-enqueued %d session(s)", len(lagging))
    return len(lagging)
