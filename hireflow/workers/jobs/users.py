"""Stream user upsert and delete, driven by the Clerk user sync."""

from __future__ import annotations

import logging
from typing import Any

from hireflow.stream.gateway import StreamRejected, StreamUser
from hireflow.workers.deps import deps
from hireflow.workers.stream_calls import call_stream

log = logging.getLogger(__name__)


async def upsert_stream_user(ctx: dict[str, Any], *, clerk_id: str) -> str:
    """Copy the stored user's name and image to Stream (id = Clerk id). A user gone from the DB is skipped."""
    d = deps(ctx)
    if d.stream is None:
        return "disabled"
    user = await d.users.by_clerk_id(clerk_id)
    if user is None:
        return "missing"
    stream = d.stream
    person = StreamUser(id=clerk_id, name=user.get("name", ""), image=user.get("profileImage", ""))
    try:
        await call_stream(ctx, d, f"upsert user {clerk_id}", lambda: stream.upsert_users([person]))
    except StreamRejected as exc:
        log.error("Stream refused upserting user %s: %s", clerk_id, exc)
        return "failed"
    return "upserted"


async def delete_stream_user(ctx: dict[str, Any], *, clerk_id: str) -> str:
    d = deps(ctx)
    if d.stream is None:
        return "disabled"
    stream = d.stream
    try:
        await call_stream(ctx, d, f"delete user {clerk_id}", lambda: stream.delete_user(clerk_id))
    except StreamRejected as exc:
        log.error("Stream refused deleting user %s: %s", clerk_id, exc)
        return "failed"
    return "deleted"
