"""`GET /api/sessions/{id}/pad` (the y-websocket endpoint) and `GET /api/sessions/{id}/pad/content`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web
from bson import ObjectId
from pycrdt import Doc

from hireflow.errors import Forbidden, Unauthorized
from hireflow.pad import messages
from hireflow.pad.presence import ROLES, Role
from hireflow.pad.room import CLOSE_AUTH, CLOSE_MALFORMED, CLOSE_RATE, PadSocket, content_of
from hireflow.services.sessions import SessionJson
from hireflow.store.sessions import parse_id
from hireflow.timeutil import iso
from hireflow.web.appkeys import ORIGINS, PAD_PRESENCE, PADS, SESSIONS, SETTINGS
from hireflow.web.auth import Caller, authenticate, caller_for, token_from
from hireflow.web.jsonio import error_response, json_response

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

SEND_QUEUE_MAX = 1024
CLOSE_FLUSH_TIMEOUT_S = 2.0


async def _member_session(request: web.Request, caller: Caller) -> tuple[ObjectId, SessionJson, Role]:
    """The session and the caller's role in it, when host or participant: 404 unknown, 403 anyone else."""
    raw_id = request.match_info["id"]
    session = await request.app[SESSIONS].get(raw_id, caller.versions)
    clerk_id = caller.user.get("clerkId")
    role: Role | None = None
    for member in ROLES:
        if clerk_id is not None and (session.get(member) or {}).get("clerkId") == clerk_id:
            role = member
    if role is None:
        raise Forbidden("Only the host and the participant can open the pad")
    pad_id = parse_id(raw_id)
    assert pad_id is not None  # SessionService.get raised NotFound otherwise
    return pad_id, session, role


class _RateLimit:
    """A token bucket: `rate_per_s` sustained, twice that in a burst."""

    def __init__(self, rate_per_s: float) -> None:
        self._rate = rate_per_s
        self._capacity = 2 * rate_per_s
        self._tokens = self._capacity
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@routes.get("/api/sessions/{id}/pad")
async def pad_socket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and not request.app[ORIGINS].allows(origin):  # as on /api/ws
        why = request.app[ORIGINS].refusal(origin)
        log.warning("pad WebSocket upgrade refused: %s", why)
        return error_response(403, why, "origin_not_allowed")
    if parse_id(request.match_info["id"]) is None:
        return error_response(404, "Session not found", "not_found")
    if not web.WebSocketResponse().can_prepare(request).ok:
        return error_response(400, "Not a WebSocket upgrade request", "bad_request")
    # Browsers cannot set headers on a WebSocket: y-websocket's `params` put the token in the query.
    # The request log records the route template only, so the token is never written anywhere.
    token = token_from(request) or request.query.get("token") or None
    if token is None:
        raise Unauthorized()
    caller = await caller_for(request, token)
    pad_id, session, role = await _member_session(request, caller)
    pads = request.app[PADS]
    room = await pads.open(pad_id, frozen=session.get("status") != "active")

    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s, max_msg_size=settings.pad_max_message_bytes, compress=False
    )
    try:
        await ws.prepare(request)
    except BaseException:
        pads.release(room)
        raise
    sock = PadSocket(
        ws, request.transport, caller.claims.user_id, queue_max=SEND_QUEUE_MAX, expires_at=caller.claims.expires_at
    )
    sock.start()
    pads.attach(room, sock)
    presence = request.app[PAD_PRESENCE]
    presence.opened(room.key, role)
    delay_s = max(0.0, caller.claims.expires_at + settings.ws_token_grace_s - time.time())
    expiry = asyncio.get_running_loop().call_later(delay_s, sock.close_soon, CLOSE_AUTH, "token expired")
    limit = _RateLimit(settings.pad_max_messages_per_s)
    try:
        async for msg in ws:
            close = _handle(request, room, sock, limit, msg)
            if close is not None:
                sock.close_soon(*close)
                break
    finally:
        expiry.cancel()
        pads.detach(room, sock)
        presence.closed(room.key, role)
        if sock.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sock.done()), CLOSE_FLUSH_TIMEOUT_S)
        await sock.stop()
    return ws


def _handle(request: web.Request, room: Any, sock: PadSocket, limit: _RateLimit, msg: Any) -> tuple[int, str] | None:
    if msg.type != WSMsgType.BINARY:
        if msg.type == WSMsgType.TEXT:
            return CLOSE_MALFORMED, "y-websocket frames are binary"
        return None
    if not limit.take():
        return CLOSE_RATE, "too many messages"
    try:
        return request.app[PADS].on_message(room, sock, messages.parse(msg.data))
    except messages.MalformedMessage:
        return CLOSE_MALFORMED, "malformed message"


@routes.get("/api/sessions/{id}/pad/content")
async def pad_content(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    pad_id, _session, _role = await _member_session(request, caller)
    stored = await request.app[PADS].store.load(pad_id)
    doc: Doc[Any] = Doc()
    doc.apply_update(stored.state)
    code, language = content_of(doc)
    return json_response({"code": code, "language": language, "updatedAt": iso(stored.updated_at)})
