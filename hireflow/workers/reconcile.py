"""The reconciler: every few seconds, finish what a crash, a timeout or an outage left undone.

1. Announce every stored change whose announcement never went out: a session whose outbox is older
   than `announce_after_s` (its writer lost Redis, lost the reply of its write, or died). Publishers
   drop an announcement that is not newer than what was published, so repeating one is harmless.
2. Re-enqueue the Stream sync of any session left behind: its last change is older than
   `reconcile_after_s` and no sync has caught up with it (the enqueue was lost, a worker died mid-job,
   or a job ran out of tries). The job id is deterministic, so a second enqueue is a no-op.
3. Queue again once, or fail, a code run left `queued` or `running` (see workers/jobs/runs.py).

Safe in every worker at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from hireflow.timeutil import utcnow
from hireflow.workers.deps import deps
from hireflow.workers.jobs.runs import reconcile_runs

log = logging.getLogger(__name__)


async def reconcile(ctx: dict[str, Any]) -> int:
    d = deps(ctx)
    announced = await drain_outboxes(ctx)
    cutoff = utcnow() - timedelta(seconds=d.settings.reconcile_after_s)
    lagging = await d.sessions.lagging_stream(cutoff)
    for session_id in lagging:
        await d.queue.sync_session(str(session_id), "reconcile")
    if lagging:
        log.info("reconciler re-enqueued %d session(s)", len(lagging))
    return announced + len(lagging) + await reconcile_runs(d)


async def drain_outboxes(ctx: dict[str, Any]) -> int:
    """Announce the changes stored more than `announce_after_s` ago and never published."""
    d = deps(ctx)
    pending = await d.sessions.unannounced(utcnow() - timedelta(seconds=d.settings.announce_after_s))
    for doc in pending:
        if "announcedEv" not in doc and doc["status"] == "active":
            # Its creation never went out (later changes replaced its outbox): subscribers hear of the
            # session for the first time, so it is announced as created, with its current state.
            doc = {**doc, "outbox": {**doc["outbox"], "kind": "session.created"}}
        await d.service.announce(doc)
    if pending:
        log.info("reconciler announced %d stored change(s) that had not been published", len(pending))
    return len(pending)
