"""The `sessions` collection: interview sessions and their guarded state transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
StreamStatus = Literal["pending", "ready", "failed", "deleted", "disabled"]

LIST_LIMIT = 20
_RECENT_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]


def parse_id(value: str) -> ObjectId | None:
    """The ObjectId in `value`, or None when it is not a 24-hex id."""
    if len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class SessionRepo:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db.sessions

    async def insert(
        self,
        *,
        problem: str,
        difficulty: Difficulty,
        host: ObjectId,
        call_id: str,
        stream_status: StreamStatus,
    ) -> Document:
        now = utcnow()
        doc: Document = {
            "problem": problem,
            "difficulty": difficulty,
            "host": host,
            "participant": None,
            "status": "active",
            "callId": call_id,
            "streamStatus": stream_status,
            "createdAt": now,
            "updatedAt": now,
            "endedAt": None,
            # Stream bookkeeping (not part of the session JSON): every state change increments `rev`
            # and sets `streamDirty`; the worker clears the flag only for the rev it synced.
            "rev": 1,
            "streamDirty": True,
            "streamError": None,
        }
        result = await self._sessions.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, session_id: ObjectId) -> Document | None:
        return await self._sessions.find_one({"_id": session_id})

    async def list_active(self, limit: int = LIST_LIMIT) -> list[Document]:
        cursor = self._sessions.find({"status": "active"}).sort(_RECENT_FIRST).limit(limit)
        return await cursor.to_list(limit)

    async def list_completed_for(self, user_id: ObjectId, limit: int = LIST_LIMIT) -> list[Document]:
        """The latest completed sessions the user hosted or joined, newest first.

        Two indexed queries merged here instead of one `$or` (see the note on SESSION_INDEXES).
        """
        found: dict[ObjectId, Document] = {}
        for role in ("host", "participant"):
            cursor = self._sessions.find({role: user_id, "status": "completed"}).sort(_RECENT_FIRST).limit(limit)
            for doc in await cursor.to_list(limit):
                found[doc["_id"]] = doc
        ordered = sorted(found.values(), key=lambda d: (d["createdAt"], d["_id"]), reverse=True)
        return ordered[:limit]

    async def set_participant(self, session_id: ObjectId, user_id: ObjectId) -> Document | None:
        """Atomically make `user_id` the participant of an active, empty session they do not host."""
        return await self._sessions.find_one_and_update(
            {"_id": session_id, "status": "active", "host": {"$ne": user_id}, "participant": None},
            {"$set": {"participant": user_id, "updatedAt": utcnow(), "streamDirty": True}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def complete(self, session_id: ObjectId, host_id: ObjectId) -> Document | None:
        """Atomically end an active session hosted by `host_id`."""
        now = utcnow()
        return await self._sessions.find_one_and_update(
            {"_id": session_id, "host": host_id, "status": "active"},
            {
                "$set": {"status": "completed", "endedAt": now, "updatedAt": now, "streamDirty": True},
                "$inc": {"rev": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def active_hosted_by(self, user_id: ObjectId) -> list[ObjectId]:
        cursor = self._sessions.find({"host": user_id, "status": "active"}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def set_stream_status(
        self, session_id: ObjectId, *, synced_rev: int, status: StreamStatus, error: str | None = None
    ) -> tuple[Document | None, bool]:
        """Record what a sync achieved: the new `streamStatus` (and error), and clear `streamDirty`
        if nothing changed since the sync read `synced_rev`. Returns the document and whether the
        status changed."""
        fields = {"streamStatus": status, "streamError": error}
        # Usually one atomic statement; if the session changed since the sync read it, the status is
        # still recorded but `streamDirty` stays set so that the change gets its own sync.
        before = await self._sessions.find_one_and_update(
            {"_id": session_id, "rev": synced_rev},
            {"$set": {**fields, "streamDirty": False}},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            before = await self._sessions.find_one_and_update(
                {"_id": session_id}, {"$set": fields}, return_document=ReturnDocument.BEFORE
            )
        if before is None:
            return None, False
        after = {**before, "streamStatus": status, "streamError": error}
        return after, before.get("streamStatus") != status

    async def lagging_stream(self, older_than: datetime, limit: int = 500) -> list[ObjectId]:
        """Sessions whose Stream resources have not caught up with a change made before `older_than`."""
        cursor = self._sessions.find({"streamDirty": True, "updatedAt": {"$lt": older_than}}, {"_id": 1}).limit(limit)
        return [doc["_id"] async for doc in cursor]

    async def explain_queries(self, user_id: ObjectId) -> dict[str, Any]:
        """The winning plans of the list queries, for tests that prove none is a collection scan."""
        plans: dict[str, Any] = {}
        queries = {
            "active": {"status": "active"},
            "recent_host": {"host": user_id, "status": "completed"},
            "recent_participant": {"participant": user_id, "status": "completed"},
        }
        lagging = await self._sessions.find({"streamDirty": True, "updatedAt": {"$lt": utcnow()}}).explain()
        plans["lagging_stream"] = lagging["queryPlanner"]["winningPlan"]
        for name, query in queries.items():
            plan = await self._sessions.find(query).sort(_RECENT_FIRST).limit(LIST_LIMIT).explain()
            plans[name] = plan["queryPlanner"]["winningPlan"]
        return plans
