"""Keep `users` in step with Clerk: one implementation behind both the Inngest functions and the
Clerk (Svix) webhook.

Idempotent and order-safe: an event older than what is stored (by Clerk's `updated_at`) is ignored,
the same event twice changes nothing, and nothing brings back a user once deleted. Every change
invalidates the user caches everywhere and hands the Stream user upsert/delete to a worker. Deleting a
user also ends the active sessions they host (so their Stream resources are torn down) and closes
their WebSocket connections on every instance.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hireflow.clerk.profile import profile_from_clerk
from hireflow.errors import HireFlowError
from hireflow.queue import JobQueue
from hireflow.services.sessions import SessionService
from hireflow.services.users import UserDirectory
from hireflow.store.sessions import SessionRepo
from hireflow.store.users import UserRepo

log = logging.getLogger(__name__)

SyncResult = dict[str, Any]


class UserSync:
    def __init__(
        self,
        users: UserRepo,
        directory: UserDirectory,
        sessions: SessionService,
        session_repo: SessionRepo,
        queue: JobQueue,
        disconnect: Callable[[str], Awaitable[None]],
    ) -> None:
        self._users = users
        self._directory = directory
        self._sessions = sessions
        self._session_repo = session_repo
        self._queue = queue
        self._disconnect = disconnect

    async def upsert(self, data: Mapping[str, Any]) -> SyncResult:
        """`user.created` or `user.updated`: a result that says what happened, never an exception."""
        try:
            profile = profile_from_clerk(data)
            updated_at = data.get("updated_at")
            stamp = int(updated_at) if isinstance(updated_at, int | float) and not isinstance(updated_at, bool) else 0
            outcome = await self._users.apply_clerk(profile, stamp)
        except HireFlowError as exc:
            log.warning("user sync refused a Clerk user: %s", exc.message)
            return {"status": "error", "error": exc.message}
        if outcome in ("created", "updated"):
            await self._directory.changed()
            await self._queue.upsert_stream_user(profile.clerk_id, stamp or None)
        return {"status": outcome, "clerkId": profile.clerk_id}

    async def delete(self, data: Mapping[str, Any]) -> SyncResult:
        """`user.deleted`: remove the user, end the sessions they host, disconnect them everywhere."""
        clerk_id = data.get("id")
        if not isinstance(clerk_id, str) or not clerk_id:
            return {"status": "error", "error": "Clerk user has no id"}
        removed = await self._users.delete_by_clerk_id(clerk_id)
        ended = 0
        if removed is not None:
            for session_id in await self._session_repo.active_hosted_by(removed["_id"]):
                try:
                    await self._sessions.end(str(session_id), removed)
                    ended += 1
                except HireFlowError:
                    pass  # ended meanwhile
            await self._directory.changed()
        await self._queue.delete_stream_user(clerk_id)
        await self._disconnect(clerk_id)
        return {
            "status": "deleted" if removed is not None else "already-deleted",
            "clerkId": clerk_id,
            "sessionsEnded": ended,
        }

    async def handle(self, event_type: str, data: Mapping[str, Any]) -> SyncResult:
        """Dispatch a Clerk event type (`user.created`, `user.updated`, `user.deleted`)."""
        if event_type in ("user.created", "user.updated"):
            return await self.upsert(data)
        if event_type == "user.deleted":
            return await self.delete(data)
        return {"status": "ignored", "type": event_type}
