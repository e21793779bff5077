"""The `sessions` collection: interview sessions and their guarded state transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING, ReadPreference, ReturnDocument, UpdateOne, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from hireflow.events import EventKind
from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
StreamStatus = Literal["pending", "ready", "failed", "deleted", "disabled"]

LIST_LIMIT = 20
# Session state changes are acknowledged once a majority of a replica set has them, so a failover
# cannot roll back a join or an end that a client was told succeeded.
SESSION_WRITE_CONCERN = WriteConcern(w="majority")
_RECENT_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]


def _outbox(kind: EventKind, cause: str) -> Document:
    """The announcement a write owes: stored with the change itself, cleared once it was published."""
    return {"kind": kind, "cause": cause, "at": utcnow()}


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
        self._sessions = db.get_collection(
            "sessions", write_concern=SESSION_WRITE_CONCERN, read_preference=ReadPreference.PRIMARY
        )

    async def insert(
        self,
        *,
        session_id: ObjectId,
        problem: str,
        difficulty: Difficulty,
        host: ObjectId,
        call_id: str,
        stream_status: StreamStatus,
        visibility: str = "public",
        invite_code: str | None = None,
    ) -> Document:
        """Insert with ids chosen by the caller, so that an insert retried after a lost reply is
        recognised (DuplicateKeyError on `_id`) instead of stored twice."""
        now = utcnow()
        doc: Document = {
            "_id": session_id,
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
            # Announcement bookkeeping: `ev` counts the changes that are announced (events carry it,
            # so a stale or repeated announcement is dropped); `outbox` is the one not yet published.
            "ev": 1,
            "outbox": _outbox("session.created", "created"),
            "visibility": visibility,
        }
        if invite_code is not None:
            doc["inviteCode"] = invite_code
        await self._sessions.insert_one(doc)
        return doc

    async def get(self, session_id: ObjectId) -> Document | None:
        return await self._sessions.find_one({"_id": session_id})

    async def list_active(self, limit: int = LIST_LIMIT) -> list[Document]:
        # Private sessions are never listed (sessions stored before `visibility` existed are public).
        query = {"status": "active", "visibility": {"$ne": "private"}}
        cursor = self._sessions.find(query).sort(_RECENT_FIRST).limit(limit)
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

    async def set_participant(
        self, session_id: ObjectId, user_id: ObjectId, invite_code: str | None = None
    ) -> Document | None:
        """Atomically make `user_id` the participant of an active, empty session they do not host
        (a private one only with its invite code)."""
        access: Document = {"visibility": {"$ne": "private"}}
        if invite_code is not None:
            access = {"$or": [access, {"inviteCode": invite_code}]}
        return await self._sessions.find_one_and_update(
            {"_id": session_id, "status": "active", "host": {"$ne": user_id}, "participant": None, **access},
            {
                "$set": {
                    "participant": user_id,
                    "updatedAt": utcnow(),
                    "streamDirty": True,
                    "outbox": _outbox("session.updated", "joined"),
                },
                "$inc": {"rev": 1, "ev": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def complete(self, session_id: ObjectId, host_id: ObjectId) -> Document | None:
        """Atomically end an active session hosted by `host_id`."""
        now = utcnow()
        return await self._sessions.find_one_and_update(
            {"_id": session_id, "host": host_id, "status": "active"},
            {
                "$set": {
                    "status": "completed",
                    "endedAt": now,
                    "updatedAt": now,
                    "streamDirty": True,
                    "outbox": _outbox("session.ended", "ended"),
                },
                "$inc": {"rev": 1, "ev": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def count_active_hosted(self, user_id: ObjectId, up_to: int) -> int:
        """How many active sessions the user hosts, counting no further than `up_to` (a bounded scan)."""
        return await self._sessions.count_documents({"host": user_id, "status": "active"}, limit=up_to)

    async def delete(self, session_id: ObjectId) -> None:
        """Remove a session that was never announced (see SessionService.create's active-session cap)."""
        await self._sessions.delete_one({"_id": session_id})

    async def set_invite_code(self, session_id: ObjectId, host_id: ObjectId, invite_code: str) -> Document | None:
        """Atomically replace the invite code of a private session hosted by `host_id`."""
        return await self._sessions.find_one_and_update(
            {"_id": session_id, "host": host_id, "visibility": "private"},
            {"$set": {"inviteCode": invite_code, "updatedAt": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def active_hosted_by(self, user_id: ObjectId) -> list[ObjectId]:
        cursor = self._sessions.find({"host": user_id, "status": "active"}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def set_stream_status(
        self,
        session_id: ObjectId,
        *,
        synced_rev: int,
        status: StreamStatus,
        error: str | None = None,
        kind: EventKind = "session.updated",
    ) -> Document | None:
        """Record what a sync achieved: the new `streamStatus` (and error), and clear `streamDirty` if
        nothing changed since the sync read `synced_rev`. Returns the document when the status changed
        (a change to announce, written with its outbox of `kind`), else None."""
        fields: Document = {
            "streamStatus": status,
            "streamError": error,
            "outbox": _outbox(kind, f"stream.{status}"),
        }
        change = {"$set": fields, "$inc": {"ev": 1}}
        # Usually one atomic statement: a new status, and nothing changed since the sync read the session.
        synced = {"_id": session_id, "rev": synced_rev}
        changed = await self._sessions.find_one_and_update(
            {**synced, "streamStatus": {"$ne": status}},
            {"$set": {**fields, "streamDirty": False}, "$inc": {"ev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if changed is not None:
            return changed
        # Else the status (if new) is recorded first, then `streamDirty` cleared if the session is still
        # at the synced rev; if it changed meanwhile, the flag stays set so the change gets its own sync.
        changed = await self._sessions.find_one_and_update(
            {"_id": session_id, "streamStatus": {"$ne": status}}, change, return_document=ReturnDocument.AFTER
        )
        await self._sessions.update_one(synced, {"$set": {"streamDirty": False, "streamError": error}})
        return changed

    async def mark_announced(self, changes: dict[ObjectId, int]) -> None:
        """For each session, clear the outbox of change `ev` and remember that it went out (a newer change
        keeps its outbox); all in one round trip (one bulk write)."""
        await self._sessions.bulk_write(
            [
                UpdateOne({"_id": session_id, "ev": ev}, {"$unset": {"outbox": ""}, "$set": {"announcedEv": ev}})
                for session_id, ev in changes.items()
            ],
            ordered=False,
        )

    async def unannounced(self, older_than: datetime, limit: int = 500) -> list[Document]:
        """Sessions with a change stored before `older_than` that was never published (its writer lost
        Redis, or its reply, or died)."""
        cursor = self._sessions.find({"outbox.at": {"$lt": older_than}}).sort("outbox.at", 1).limit(limit)
        return await cursor.to_list(limit)

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
        outbox = await self._sessions.find({"outbox.at": {"$lt": utcnow()}}).sort("outbox.at", 1).explain()
        plans["unannounced"] = outbox["queryPlanner"]["winningPlan"]
        for name, query in queries.items():
            plan = await self._sessions.find(query).sort(_RECENT_FIRST).limit(LIST_LIMIT).explain()
            plans[name] = plan["queryPlanner"]["winningPlan"]
        return plans
