"""The `runs` collection: code runs in a session and their guarded state transitions.

queued → running → succeeded | failed | timed_out | rejected. A worker claims a queued run
(`claim`) and records its end only if the run is still the one it claimed (`finish`: same status and
`retries`), so a worker that comes back after the reconciler gave its run to another cannot overwrite
the outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "rejected"]
FINAL: tuple[RunStatus, ...] = ("succeeded", "failed", "timed_out", "rejected")

LIST_LIMIT = 20
_RECENT_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]


class RunRepo:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._runs = db.runs

    async def insert(
        self,
        *,
        run_id: ObjectId,
        session: ObjectId,
        by: Document,
        language: str,
        version: str,
        code: str,
        stdin: str,
    ) -> Document:
        now = utcnow()
        doc: Document = {
            "_id": run_id,
            "session": session,
            "by": by["_id"],
            "byName": by.get("name", ""),
            "language": language,
            "version": version,
            "code": code,
            "stdin": stdin,
            "status": "queued",
            "stdout": "",
            "stderr": "",
            "truncated": False,
            "exitCode": None,
            "signal": None,
            "durationMs": None,
            "error": None,
            "retries": 0,
            "createdAt": now,
            "updatedAt": now,
            "startedAt": None,
            "finishedAt": None,
        }
        await self._runs.insert_one(doc)
        return doc

    async def get(self, run_id: ObjectId) -> Document | None:
        return await self._runs.find_one({"_id": run_id})

    async def recent(self, session: ObjectId, limit: int = LIST_LIMIT) -> list[Document]:
        cursor = self._runs.find({"session": session}, {"code": 0, "stdin": 0}).sort(_RECENT_FIRST).limit(limit)
        return await cursor.to_list(limit)

    async def claim(self, run_id: ObjectId) -> Document | None:
        """queued → running, for one worker only."""
        now = utcnow()
        return await self._runs.find_one_and_update(
            {"_id": run_id, "status": "queued"},
            {"$set": {"status": "running", "startedAt": now, "updatedAt": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def finish(self, claimed: Document, status: RunStatus, fields: dict[str, Any]) -> Document | None:
        """running → a final status, only if nobody took the run over since `claimed` was read."""
        now = utcnow()
        return await self._runs.find_one_and_update(
            {"_id": claimed["_id"], "status": claimed["status"], "retries": claimed["retries"]},
            {"$set": {**fields, "status": status, "finishedAt": now, "updatedAt": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def requeue(self, stale: Document) -> Document | None:
        """A stale queued or running run goes back to the queue as its one retry."""
        return await self._runs.find_one_and_update(
            {"_id": stale["_id"], "status": stale["status"], "retries": stale["retries"]},
            {"$set": {"status": "queued", "updatedAt": utcnow(), "startedAt": None}, "$inc": {"retries": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def stale(self, older_than: datetime, limit: int = 500) -> list[Document]:
        """Runs `queued` or `running` whose last step is older than `older_than`."""
        found: list[Document] = []
        for status in ("queued", "running"):
            query = {"status": status, "updatedAt": {"$lt": older_than}}
            cursor = self._runs.find(query, {"code": 0, "stdin": 0}).limit(limit)
            found.extend(await cursor.to_list(limit))
        return found

    async def explain_queries(self, session: ObjectId) -> dict[str, Any]:
        """The winning plans of the list and reconciler queries, for tests that prove neither scans."""
        recent = await self._runs.find({"session": session}).sort(_RECENT_FIRST).limit(LIST_LIMIT).explain()
        stale = await self._runs.find({"status": "running", "updatedAt": {"$lt": utcnow()}}).explain()
        return {"recent": recent["queryPlanner"]["winningPlan"], "stale": stale["queryPlanner"]["winningPlan"]}
