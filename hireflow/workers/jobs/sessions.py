"""`sync_session`: make a session's Stream resources match its state, whatever happened before.

The job is level-triggered: it reads the session and converges. An active session gets its users,
video call `default:<callId>` (members host and participant) and chat channel `messaging:<callId>`
(members host, then participant); a completed one has both deleted. Create, join and end each
enqueue it, the reconciler enqueues it for anything left behind, and a per-session lock keeps two
workers from working on one session at once. Every step is get-or-create or delete-if-present, so
running it again (after a crash, a retry, a duplicate) changes nothing that is already right.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from bson import ObjectId

from hireflow.events import EventKind
from hireflow.store.mongo import Document
from hireflow.store.sessions import StreamStatus, parse_id
from hireflow.stream.gateway import StreamGateway, StreamRejected, StreamUser
from hireflow.workers.deps import WorkerDeps, deps
from hireflow.workers.retry import backoff_s
from hireflow.workers.stream_calls import call_stream

log = logging.getLogger(__name__)

LOCK_BUSY_DELAY_S = 0.5


async def sync_session(ctx: dict[str, Any], *, session_id: str) -> str:
    d = deps(ctx)
    oid = parse_id(session_id)
    if oid is None:
        return "invalid id"
    async with d.locks.hold(session_id) as held:
        if not held:
            raise Retry(defer=backoff_s(1, LOCK_BUSY_DELAY_S))
        doc = await d.sessions.get(oid)
        if doc is None:
            return "missing"
        target, error = await _converge(ctx, d, doc)
        await _record(d, oid, doc, target, error)
        return target


async def _converge(ctx: dict[str, Any], d: WorkerDeps, doc: Document) -> tuple[StreamStatus, str | None]:
    """Do the Stream work; return the `streamStatus` it earned and, on a permanent failure, why."""
    if d.stream is None:
        if not d.warned_stream_disabled:
            d.warned_stream_disabled = True
            log.warning("Stream is not configured (STREAM_API_KEY/STREAM_API_SECRET): sessions are marked disabled")
        return "disabled", None
    stream, what = d.stream, f"session {doc['_id']}"
    try:
        if doc["status"] == "active":
            await call_stream(ctx, d, what, lambda: _provision(stream, d, doc))
            return "ready", None

        async def teardown() -> None:
            await stream.delete_call(doc["callId"])
            await stream.delete_channel(doc["callId"])

        await call_stream(ctx, d, what, teardown)
        return "deleted", None
    except StreamRejected as exc:
        log.error("session %s: Stream refused for good: %s", doc["_id"], exc)
        return "failed", str(exc)


async def _provision(stream: StreamGateway, d: WorkerDeps, doc: Document) -> None:
    ids = [doc["host"]] + ([doc["participant"]] if doc.get("participant") else [])
    users = await d.users.by_ids(ids)
    if doc["host"] not in users:
        raise StreamRejected("the host no longer exists")
    people = [users[i] for i in ids if i in users]
    # Upsert first: Stream refuses a channel or call member that is not a user yet, and the Clerk
    # sync may not have run.
    await stream.upsert_users(
        [StreamUser(id=u["clerkId"], name=u.get("name", ""), image=u.get("profileImage", "")) for u in people]
    )
    host_id = users[doc["host"]]["clerkId"]
    members = [u["clerkId"] for u in people]
    custom: dict[str, object] = {
        "sessionId": str(doc["_id"]),
        "problem": doc["problem"],
        "difficulty": doc["difficulty"],
    }
    await stream.ensure_call(doc["callId"], host_id=host_id, members=members, custom=custom)
    await stream.ensure_channel(doc["callId"], name=f"{doc['problem']} Session", host_id=host_id, members=members)


async def _record(d: WorkerDeps, oid: ObjectId, synced: Document, target: StreamStatus, error: str | None) -> None:
    # A creation or an end still unannounced (its writer lost its reply or Redis) must not be replaced by
    # a plain update: the lobby hears only of created and ended sessions, so it would never learn of it.
    pending = (synced.get("outbox") or {}).get("kind")
    kind: EventKind = pending if pending in ("session.created", "session.ended") else "session.updated"
    changed = await d.sessions.set_stream_status(
        oid, synced_rev=synced.get("rev", 0), status=target, error=error, kind=kind
    )
    if changed is not None:
        await d.service.announce(changed)
