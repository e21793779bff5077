"""Who may read a session, and what of it they see.

The session JSON built by `services/sessions.py` is complete (both users' emails, the invite code of
a private session) and is cached and shared by every reader. It is cut down here, per viewer, at the
edge (REST routes, WebSocket snapshots, published events), never stored per viewer:

- the host sees everything, `inviteCode` included;
- the participant sees both users' emails, not the invite code;
- anyone else sees users as `_id`, `name`, `profileImage`, `clerkId`: no email, no invite code.

A completed session is readable by its two members only; a private one by its members and by whoever
presents its invite code. Everyone else is told "Session not found", exactly as for a missing id.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal

Visibility = Literal["public", "private"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")

SessionJson = dict[str, Any]


def new_invite_code() -> str:
    """128 random bits, URL-safe: cannot be guessed or enumerated."""
    return secrets.token_urlsafe(16)


def invite_code_from(body: object) -> str | None:
    """The `inviteCode` of a request body or query, if it is a string."""
    code = body.get("inviteCode") if isinstance(body, Mapping) else None
    return code if isinstance(code, str) and code else None


def _clerk_id(user: object) -> str | None:
    clerk_id = user.get("clerkId") if isinstance(user, dict) else None
    return clerk_id if isinstance(clerk_id, str) and clerk_id else None


def is_member(session: SessionJson, clerk_id: str | None) -> bool:
    return clerk_id is not None and clerk_id in (_clerk_id(session.get("host")), _clerk_id(session.get("participant")))


def code_matches(session: SessionJson, invite_code: str | None) -> bool:
    expected = session.get("inviteCode")
    if not isinstance(expected, str) or invite_code is None:
        return False
    return secrets.compare_digest(expected.encode(), invite_code.encode())


def can_read(session: SessionJson, clerk_id: str | None, invite_code: str | None = None) -> bool:
    if is_member(session, clerk_id):
        return True
    if session.get("status") != "active":
        return False  # a completed session: its two members only
    if session.get("visibility") == "private":
        return code_matches(session, invite_code)
    return True


def _without_email(user: object) -> object:
    if not isinstance(user, dict):
        return user
    return {key: value for key, value in user.items() if key != "email"}


def view_for(session: SessionJson, clerk_id: str | None) -> SessionJson:
    """What `clerk_id` (None: anybody) may see of `session`; the shared object itself is never changed."""
    if clerk_id is not None and clerk_id == _clerk_id(session.get("host")):
        return session
    view = dict(session)
    view.pop("inviteCode", None)
    if not is_member(session, clerk_id):
        view["host"] = _without_email(session.get("host"))
        view["participant"] = _without_email(session.get("participant"))
    return view


def public_view(session: SessionJson) -> SessionJson:
    return view_for(session, None)
