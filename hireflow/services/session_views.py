"""Cached session reads as immutable bytes, and the response body each viewer gets from them.

A cached read is shared by every request of the process, so it must not be something a caller can
change: each entry keeps the sessions as serialized JSON (`orjson`), hands out a fresh copy to
whoever needs objects (`sessions()`, `session()`), and builds the response body of each kind of
viewer once (`body_for`): the host, the participant, and everybody else (the lobby's usual reader:
no email, no invite code, see services/access.py) each get their prebuilt bytes, so a warm read
costs no serialization at all.
"""

from __future__ import annotations

from typing import Any

import orjson

from hireflow.services.access import SessionJson, can_read, is_member, view_for


def _clerk_ids(session: SessionJson) -> set[str]:
    found = set()
    for role in ("host", "participant"):
        user = session.get(role)
        if isinstance(user, dict) and isinstance(user.get("clerkId"), str):
            found.add(user["clerkId"])
    return found


class CachedSession:
    """One session as stored in the read cache (`GET /api/sessions/{id}`, session topics)."""

    __slots__ = ("_bodies", "_json", "_raw")

    def __init__(self, session: SessionJson) -> None:
        self._raw = orjson.dumps(session)
        self._json = orjson.loads(self._raw)
        """Private: read for access checks, never handed out."""
        self._bodies: dict[str | None, bytes] = {}

    def session(self) -> SessionJson:
        """A copy the caller may change."""
        copy: SessionJson = orjson.loads(self._raw)
        return copy

    def readable_by(self, clerk_id: str | None, invite_code: str | None) -> bool:
        return can_read(self._json, clerk_id, invite_code)

    def body_for(self, clerk_id: str | None) -> bytes:
        """`{"session": …}` as `clerk_id` may see it (see services/access.py)."""
        key = clerk_id if is_member(self._json, clerk_id) else None
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = orjson.dumps({"session": view_for(self._json, key)})
        return body


class CachedList:
    """A list of sessions as stored in the read cache (the lobby, a user's recent sessions)."""

    __slots__ = ("_bodies", "_json", "_members", "_raw")

    def __init__(self, sessions: list[SessionJson]) -> None:
        self._raw = orjson.dumps(sessions)
        self._json: list[SessionJson] = orjson.loads(self._raw)
        self._members: frozenset[str] = frozenset().union(*(_clerk_ids(s) for s in self._json))
        self._bodies: dict[str | None, bytes] = {}

    def sessions(self) -> list[SessionJson]:
        """A copy the caller may change."""
        copy: list[SessionJson] = orjson.loads(self._raw)
        return copy

    def body_for(self, clerk_id: str | None) -> bytes:
        """`{"sessions": […]}` as `clerk_id` may see it. Everyone who is in none of the sessions shares
        one body; each member (at most two per session) gets their own, built once."""
        key = clerk_id if clerk_id in self._members else None
        body = self._bodies.get(key)
        if body is None:
            views: list[Any] = [view_for(s, key) for s in self._json]
            body = self._bodies[key] = orjson.dumps({"sessions": views})
        return body
