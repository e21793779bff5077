"""Interview sessions: create, list, join, end, with the seed's rules and messages."""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

import orjson
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from hireflow import keys
from hireflow.cache import CacheVersions, LocalCache, Versions
from hireflow.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from hireflow.events import EventSink, SessionEvent
from hireflow.models import NewSession, parse
from hireflow.services import access
from hireflow.services.outbox import OutboxClearer
from hireflow.services.session_views import CachedList, CachedSession
from hireflow.store.idempotency import IdempotencyRepo
from hireflow.store.mongo import Document
from hireflow.store.sessions import Difficulty, SessionRepo, StreamStatus, parse_id
from hireflow.store.users import UserRepo, public_user
from hireflow.timeutil import iso

log = logging.getLogger(__name__)

_MAX_CACHED_SESSIONS = 10_000
_RACE_RETRIES = 3
ACTIVE_CAP_RETRY_S = 60
"""`Retry-After` of a create refused by the active-session cap (it lasts until the host ends one)."""

SessionJson = dict[str, Any]


def new_call_id() -> str:
    """128 random bits: unguessable, and valid as both a Stream call id and a chat channel id."""
    return "session_" + secrets.token_hex(16)


def session_json(doc: Document, users: dict[ObjectId, Document]) -> SessionJson:
    """The Mongoose-compatible session object, with host and participant populated."""
    host, participant = users.get(doc["host"]), users.get(doc["participant"])
    return {
        "_id": str(doc["_id"]),
        "problem": doc["problem"],
        "difficulty": doc["difficulty"],
        "host": public_user(host) if host is not None else None,
        "participant": public_user(participant) if participant is not None else None,
        "status": doc["status"],
        "callId": doc["callId"],
        "streamStatus": doc.get("streamStatus", "pending"),
        "createdAt": iso(doc.get("createdAt")),
        "updatedAt": iso(doc.get("updatedAt")),
        "endedAt": iso(doc.get("endedAt")),
        "visibility": doc.get("visibility", "public"),
        # Shared by every reader: hireflow/services/access.py strips it for all but the host.
        **({"inviteCode": doc["inviteCode"]} if doc.get("inviteCode") else {}),
    }


class SessionService:
    def __init__(
        self,
        sessions: SessionRepo,
        users: UserRepo,
        versions: CacheVersions,
        events: EventSink,
        *,
        cache_max_age_s: float,
        idempotency: IdempotencyRepo | None = None,
        stream_enabled: bool = True,
        max_active_hosted: int | None = 3,
    ) -> None:
        self._max_active_hosted = max_active_hosted
        self._sessions = sessions
        self._outbox = OutboxClearer(sessions)
        self._idempotency = idempotency
        # Without Stream no worker will ever provision the session: say so from its first response.
        self._initial_stream_status: StreamStatus = "pending" if stream_enabled else "disabled"
        self._users = users
        self._versions = versions
        self._events = events
        self._lists: LocalCache[CachedList] = LocalCache(max_entries=_MAX_CACHED_SESSIONS, max_age_s=cache_max_age_s)
        self._by_id: LocalCache[CachedSession] = LocalCache(max_entries=_MAX_CACHED_SESSIONS, max_age_s=cache_max_age_s)

    # Reads: served from the local cache while the versions read at the start of the request hold.

    async def active(self, versions: Versions) -> list[SessionJson]:
        return (await self.active_view(versions)).sessions()

    async def active_view(self, versions: Versions) -> CachedList:
        async def load() -> CachedList:
            return CachedList(await self._populate(await self._sessions.list_active()))

        return await self._lists.get_or_load("active", versions.sessions_view, load)

    async def recent_view(self, user: Document, versions: Versions) -> CachedList:
        async def load() -> CachedList:
            return CachedList(await self._populate(await self._sessions.list_completed_for(user["_id"])))

        return await self._lists.get_or_load(("recent", user["_id"]), versions.sessions_view, load)

    async def get(self, raw_id: str, versions: Versions) -> SessionJson:
        """The session as every member sees it (a copy the caller may change)."""
        return (await self.get_view(raw_id, versions)).session()

    async def get_view(self, raw_id: str, versions: Versions) -> CachedSession:
        session_id = _session_id(raw_id)

        async def load() -> CachedSession:
            doc = await self._sessions.get(session_id)
            if doc is None:
                raise NotFound("Session not found")
            return CachedSession((await self._populate([doc]))[0])

        return await self._by_id.get_or_load(session_id, versions.sessions_view, load)

    async def is_active(self, session_id: ObjectId) -> bool:
        """Whether the stored session exists and has not ended (read from MongoDB, never a cache)."""
        doc = await self._sessions.get(session_id)
        return doc is not None and doc["status"] == "active"

    # Writes: one atomic MongoDB statement each, then a version bump and one domain event.

    async def create(self, host: Document, body: object, idempotency_key: str | None = None) -> SessionJson:
        """Store a new session and announce it. Its `_id` is chosen before anything is written, so a
        retried insert whose first attempt landed, or a retried request with the same Idempotency-Key,
        answers with the one stored session instead of storing a second."""
        new = parse(NewSession, body)  # the rules and their messages are the model's (hireflow/models.py)
        problem, difficulty, visibility = new.problem, new.difficulty, new.visibility
        session_id = ObjectId()
        if idempotency_key is not None:
            if self._idempotency is None:
                raise RuntimeError("SessionService built without an IdempotencyRepo")
            private = ["private"] if visibility == "private" else []  # public keeps earlier fingerprints
            fingerprint = hashlib.sha256(orjson.dumps([problem, difficulty, *private])).hexdigest()
            claimed = await self._idempotency.claim(host["_id"], idempotency_key, fingerprint, session_id)
            if claimed != session_id:
                earlier = await self._sessions.get(claimed)
                if earlier is not None:
                    return (await self._populate([earlier], {host["_id"]: host}))[0]
                session_id = claimed  # the first request claimed the key but never stored its session
        await self._check_active_cap(host["_id"])
        doc = await self._insert(session_id, problem, difficulty, host["_id"], visibility)
        await self._check_active_cap(host["_id"], inserted=doc["_id"])
        return await self.announce(doc, {host["_id"]: host})

    async def _check_active_cap(self, host_id: ObjectId, inserted: ObjectId | None = None) -> None:
        """At most `max_active_hosted` active sessions per host: a MongoDB fact, not a counter.

        Checked before the insert (the usual refusal), and counted again after it: when concurrent
        creates by one host overshoot, each creator that sees too many removes its own session,
        unannounced. Every pair of racers has at least one that sees both, so the cap is never
        exceeded; the residual race is the other way: a burst may refuse one create too many."""
        limit = self._max_active_hosted
        if limit is None:
            return
        count = await self._sessions.count_active_hosted(host_id, up_to=limit + 1)
        if count < limit or (inserted is not None and count == limit):
            return
        if inserted is not None:
            await self._sessions.delete(inserted)
        raise TooManyRequests(
            f"You can host at most {limit} active sessions at once; end one first", ACTIVE_CAP_RETRY_S
        )

    async def _insert(
        self, session_id: ObjectId, problem: str, difficulty: Difficulty, host: ObjectId, visibility: str
    ) -> Document:
        for _attempt in range(_RACE_RETRIES):
            try:
                return await self._sessions.insert(
                    session_id=session_id,
                    problem=problem,
                    difficulty=difficulty,
                    host=host,
                    call_id=new_call_id(),
                    stream_status=self._initial_stream_status,
                    visibility=visibility,
                    invite_code=access.new_invite_code() if visibility == "private" else None,
                )
            except DuplicateKeyError:
                existing = await self._sessions.get(session_id)
                if existing is not None and existing["host"] == host:
                    return existing  # ours: an earlier attempt (a driver retry, the same key) landed
                if existing is not None:
                    raise Conflict("Could not allocate a session id, please retry") from None
                # else a callId collision (2**-128, but never a 500): draw another
        raise Conflict("Could not allocate a call id, please retry")

    async def join(self, raw_id: str, user: Document, invite_code: str | None = None) -> SessionJson:
        session_id, user_id = _session_id(raw_id), user["_id"]
        for _attempt in range(_RACE_RETRIES):
            doc = await self._sessions.set_participant(session_id, user_id, invite_code)
            if doc is not None:
                return await self.announce(doc, {user_id: user})
            current = await self._sessions.get(session_id)
            if current is None or not _may_see(current, user_id, invite_code):
                raise NotFound("Session not found")
            if current["status"] != "active":
                raise BadRequest("Cannot join a completed session")
            if current["host"] == user_id:
                raise BadRequest("Host cannot join their own session as participant")
            if current["participant"] == user_id:
                return (await self._populate([current], {user_id: user}))[0]
            if current["participant"] is not None:
                raise Conflict("Session is full")
        raise Conflict("Session is full")

    async def end(self, raw_id: str, user: Document) -> SessionJson:
        session_id, user_id = _session_id(raw_id), user["_id"]
        for _attempt in range(_RACE_RETRIES):
            doc = await self._sessions.complete(session_id, user_id)
            if doc is not None:
                return await self.announce(doc, {user_id: user})
            current = await self._sessions.get(session_id)
            if current is None or not _may_see(current, user_id, None):
                raise NotFound("Session not found")
            if current["host"] != user_id:
                raise Forbidden("Only the host can end the session")
            if current["status"] == "completed":
                raise BadRequest("Session is already completed")
        raise BadRequest("Session is already completed")

    async def rotate_invite_code(self, raw_id: str, user: Document) -> SessionJson:
        """A new invite code for a private session (host only); the old one stops working at once."""
        session_id, user_id = _session_id(raw_id), user["_id"]
        doc = await self._sessions.set_invite_code(session_id, user_id, access.new_invite_code())
        if doc is None:
            current = await self._sessions.get(session_id)
            if current is None or not _may_see(current, user_id, None):
                raise NotFound("Session not found")
            if current["host"] != user_id:
                raise Forbidden("Only the host can rotate the invite code")
            raise BadRequest("Session is not private")
        # The code is part of the cached JSON: invalidate it everywhere. No event: nothing public changed.
        await self._versions.bump(keys.SESSIONS_VERSION)
        return (await self._populate([doc], {user_id: user}))[0]

    async def announce(self, doc: Document, known: dict[ObjectId, Document] | None = None) -> SessionJson:
        """After a session was written with an outbox (here, by a worker, or found by the reconciler):
        invalidate cached reads everywhere, publish the domain event with the session's new JSON, and
        clear the outbox once every sink delivered it. `known` are users already at hand.

        If this process loses Redis, its reply, or its life before the outbox is cleared, the reconciler
        announces the change again; publishers drop the repeat if the first one did get through."""
        await self._versions.bump(keys.SESSIONS_VERSION)
        view = (await self._populate([doc], known))[0]
        outbox = doc.get("outbox") or {}
        event = SessionEvent(
            kind=outbox.get("kind", "session.updated"),
            session=view,
            cause=outbox.get("cause", "reconciled"),
            ev=doc.get("ev", 0),
        )
        if await self._events.publish(event) and "outbox" in doc:
            self._outbox.announced(doc["_id"], doc["ev"])
        return view

    async def aclose(self) -> None:
        """Finish what is pending (the outbox clears of announced changes)."""
        await self._outbox.aclose()

    async def _populate(self, docs: list[Document], known: dict[ObjectId, Document] | None = None) -> list[SessionJson]:
        """Session JSON for each document, loading the users not already at hand in one query."""
        users = dict(known or {})
        wanted = {d[role] for d in docs for role in ("host", "participant") if d.get(role) is not None}
        missing = wanted - users.keys()
        if missing:
            users.update(await self._users.by_ids(missing))
        return [session_json(doc, users) for doc in docs]


def _may_see(doc: Document, user_id: ObjectId, invite_code: str | None) -> bool:
    """Whether a write's error may say anything more than "Session not found" (a private session
    is only known to its members and to holders of its code)."""
    if user_id in (doc["host"], doc.get("participant")) or doc.get("visibility") != "private":
        return True
    return access.code_matches(doc, invite_code)


def _session_id(raw_id: str) -> ObjectId:
    session_id = parse_id(raw_id)
    if session_id is None:
        raise NotFound("Session not found")
    return session_id
