"""Clearing the outboxes of announced changes, in batches.

A write stores the announcement it owes (`outbox`, see store/sessions.py); once every sink has it, the
outbox is cleared. That clear is one more MongoDB write per change, on the path of every create, join
and end, and it is not urgent: an outbox left behind only makes the reconciler announce the change
again after `ANNOUNCE_AFTER_S`, and publishers drop that repeat (its `ev` went out already). So the
clears of all the changes announced while one clear is in flight go out together, as one bulk write,
as soon as it returns. A process that dies first leaves those outboxes to the reconciler.
"""

from __future__ import annotations

import asyncio
import logging

from bson import ObjectId
from pymongo.errors import PyMongoError

from hireflow.store.sessions import SessionRepo

log = logging.getLogger(__name__)


class OutboxClearer:
    def __init__(self, sessions: SessionRepo) -> None:
        self._sessions = sessions
        self._pending: dict[ObjectId, int] = {}
        self._task: asyncio.Task[None] | None = None

    def announced(self, session_id: ObjectId, ev: int) -> None:
        """Change `ev` of the session went out: clear its outbox (soon, with others)."""
        self._pending[session_id] = max(ev, self._pending.get(session_id, ev))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._clear())

    async def _clear(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self._sessions.mark_announced(batch)
            except PyMongoError as exc:  # the changes stand and went out; the reconciler repeats them
                log.warning("%d outboxes not cleared: %r", len(batch), exc)

    async def aclose(self) -> None:
        """Clear what is pending now (shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
