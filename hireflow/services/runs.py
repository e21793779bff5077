"""Code runs in a session: who may run what, recording each step, and telling both people live.

The web process validates and queues a run (`create`: it never waits for the engine), a worker
executes it (`start`, then `finish`), and the reconciler retries once or fails a run a dead worker
left behind (`retry_or_fail`). Each step is one guarded MongoDB update followed by one event,
`run.queued`, `run.started` or `run.finished`, on the session's topic.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from bson import ObjectId
from redis.exceptions import RedisError

from hireflow.cache import Versions
from hireflow.errors import BadRequest, Forbidden, ServiceUnavailable
from hireflow.models import NewRun, parse
from hireflow.piston.runtimes import RuntimeCatalog
from hireflow.queue import JobQueue
from hireflow.realtime import protocol
from hireflow.realtime.publisher import RealtimeSink
from hireflow.services.run_limits import RunLimits
from hireflow.services.sessions import SessionJson, SessionService
from hireflow.store.mongo import Document
from hireflow.store.runs import RunRepo, RunStatus
from hireflow.timeutil import iso

log = logging.getLogger(__name__)

RunJson = dict[str, Any]

SESSION_ENDED = "The session ended before this run started"


def run_json(doc: Document) -> RunJson:
    """A run as the API and the events show it (without its code and stdin)."""
    return {
        "_id": str(doc["_id"]),
        "session": str(doc["session"]),
        "by": {"_id": str(doc["by"]), "name": doc.get("byName", "")},
        "language": doc["language"],
        "version": doc["version"],
        "status": doc["status"],
        "stdout": doc.get("stdout", ""),
        "stderr": doc.get("stderr", ""),
        "truncated": bool(doc.get("truncated")),
        "exitCode": doc.get("exitCode"),
        "signal": doc.get("signal"),
        "durationMs": doc.get("durationMs"),
        "error": doc.get("error"),
        "createdAt": iso(doc.get("createdAt")),
        "startedAt": iso(doc.get("startedAt")),
        "finishedAt": iso(doc.get("finishedAt")),
    }


class RunService:
    def __init__(
        self,
        runs: RunRepo,
        sessions: SessionService,
        limits: RunLimits,
        realtime: RealtimeSink,
        queue: JobQueue,
        catalog: RuntimeCatalog | None,
    ) -> None:
        self._runs = runs
        self._sessions = sessions
        self._limits = limits
        self._realtime = realtime
        self._queue = queue
        self._catalog = catalog
        """None when PISTON_URL is not set."""

    # --- the web process ----------------------------------------------------------------------

    async def create(self, raw_session_id: str, user: Document, versions: Versions, body: object) -> RunJson:
        if self._catalog is None:
            raise ServiceUnavailable("Code execution is not configured")
        session = await self._member_session(raw_session_id, user, versions, "run code in")
        if session["status"] != "active":
            raise BadRequest("Cannot run code in a completed session")
        new = parse(NewRun, body)
        resolved = self._catalog.resolve(new.language, new.version)
        if resolved is None:
            raise BadRequest(f"Unsupported language: {new.language}")
        language, version = resolved
        run_id = ObjectId()
        owner = {"user_id": str(user["_id"]), "session_id": session["_id"], "run_id": str(run_id)}
        await self._limits.admit(**owner)
        try:
            doc = await self._runs.insert(
                run_id=run_id,
                session=ObjectId(session["_id"]),
                by=user,
                language=language,
                version=version,
                code=new.code,
                stdin=new.stdin or "",
            )
        except BaseException:
            await self._limits.forget(**owner)
            raise
        view = await self._announce("run.queued", doc)
        # After the event: run.queued always comes before the worker's run.started. A failed enqueue
        # leaves the run queued; the reconciler enqueues it again.
        await self._queue.execute_run(str(run_id))
        return view

    async def recent(self, raw_session_id: str, user: Document, versions: Versions) -> list[RunJson]:
        session = await self._member_session(raw_session_id, user, versions, "see the runs of")
        return [run_json(doc) for doc in await self._runs.recent(ObjectId(session["_id"]))]

    async def _member_session(self, raw_session_id: str, user: Document, versions: Versions, what: str) -> SessionJson:
        """The session as the API shows it (from the read cache: no MongoDB query when it is warm)."""
        session = await self._sessions.get(raw_session_id, versions)
        members = [(session.get(role) or {}).get("_id") for role in ("host", "participant")]
        if str(user["_id"]) not in members:
            raise Forbidden(f"Only the host and the participant can {what} this session")
        return session

    # --- the workers --------------------------------------------------------------------------

    async def start(self, run_id: ObjectId) -> Document | None:
        """Claim a queued run for this worker; None when another has it or it has ended. A run whose
        session has ended since it was queued is not executed: it ends `failed`, saying so."""
        doc = await self._runs.claim(run_id)
        if doc is None:
            return None
        if not await self._sessions.is_active(doc["session"]):
            await self.finish(doc, "failed", {"error": SESSION_ENDED, "startedAt": None})
            return None
        await self._announce("run.started", doc)
        return doc

    async def finish(self, claimed: Document, status: RunStatus, fields: dict[str, Any]) -> Document | None:
        """Record a run's end (unless it was taken over meanwhile), free its places, tell both people."""
        doc = await self._runs.finish(claimed, status, fields)
        if doc is not None:
            await self._release(doc)
            await self._announce("run.finished", doc)
        return doc

    async def retry_or_fail(self, stale: Document) -> str:
        """A run a worker left behind: queued again once, then failed. Returns what was done."""
        if stale.get("retries", 0) < 1:
            doc = await self._runs.requeue(stale)
            if doc is None:
                return "moved on"
            await self._announce("run.queued", doc)
            await self._queue.execute_run(str(doc["_id"]))
            return "retried"
        reason = (
            "The worker running this code stopped before it finished"
            if stale["status"] == "running"
            else "No worker picked this run up in time"
        )
        done = await self.finish(stale, "failed", {"error": reason})
        return "failed" if done is not None else "moved on"

    async def _release(self, doc: Document) -> None:
        try:
            await self._limits.release(user_id=str(doc["by"]), session_id=str(doc["session"]), run_id=str(doc["_id"]))
        except (RedisError, OSError) as exc:  # the leases lapse by themselves
            log.warning("could not release the places of run %s: %r", doc["_id"], exc)

    async def _announce(self, kind: str, doc: Document) -> RunJson:
        view = run_json(doc)
        body = orjson.dumps({"event": kind, "run": view})
        await self._realtime.publish_body(kind, [protocol.session_topic(view["session"])], body)
        return view
