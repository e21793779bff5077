"""`/api/sessions`: create, list, read, join and end interview sessions, rotate an invite code.

Every session leaves here through `access.view_for` (emails for members only, the invite code for
the host only); reads of sessions the caller may not see are "Session not found"."""

from __future__ import annotations

from aiohttp import web

from hireflow.errors import BadRequest, NotFound
from hireflow.services.access import invite_code_from, view_for
from hireflow.web.appkeys import QUOTAS, SESSIONS, SETTINGS
from hireflow.web.auth import authenticate
from hireflow.web.jsonio import json_body, json_response, read_json

routes = web.RouteTableDef()

IDEMPOTENCY_KEY_MAX_CHARS = 255


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX_CHARS or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable characters")
    return key


@routes.post("/api/sessions")
async def create_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await request.app[QUOTAS].hit("create", caller.claims.user_id)
    body = await read_json(request, request.app[SETTINGS].max_body_bytes)
    session = await request.app[SESSIONS].create(caller.user, body, _idempotency_key(request))
    return json_response({"session": view_for(session, caller.claims.user_id)}, status=201)


@routes.get("/api/sessions/active")
async def active_sessions(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    cached = await request.app[SESSIONS].active_view(caller.versions)
    return json_body(cached.body_for(caller.claims.user_id))


@routes.get("/api/sessions/my-recent")
async def my_recent_sessions(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    cached = await request.app[SESSIONS].recent_view(caller.user, caller.versions)
    return json_body(cached.body_for(caller.claims.user_id))


@routes.get("/api/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    cached = await request.app[SESSIONS].get_view(request.match_info["id"], caller.versions)
    if not cached.readable_by(caller.claims.user_id, invite_code_from(request.query)):
        raise NotFound("Session not found")
    return json_body(cached.body_for(caller.claims.user_id))


@routes.post("/api/sessions/{id}/join")
async def join_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await request.app[QUOTAS].hit("join", caller.claims.user_id)
    body = await read_json(request, request.app[SETTINGS].max_body_bytes)
    session = await request.app[SESSIONS].join(request.match_info["id"], caller.user, invite_code_from(body))
    return json_response({"session": view_for(session, caller.claims.user_id)})


@routes.post("/api/sessions/{id}/end")
async def end_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await request.app[QUOTAS].hit("write", caller.claims.user_id)
    session = await request.app[SESSIONS].end(request.match_info["id"], caller.user)
    return json_response({"session": view_for(session, caller.claims.user_id), "message": "Session ended successfully"})


@routes.post("/api/sessions/{id}/invite-code")
async def rotate_invite_code(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await request.app[QUOTAS].hit("write", caller.claims.user_id)
    session = await request.app[SESSIONS].rotate_invite_code(request.match_info["id"], caller.user)
    return json_response({"session": view_for(session, caller.claims.user_id)})
