"""`/api/sessions`: create, list, read, join and end interview sessions."""

from __future__ import annotations

from aiohttp import web

from hireflow.errors import BadRequest
from hireflow.web.appkeys import SESSIONS, SETTINGS
from hireflow.web.auth import authenticate
from hireflow.web.jsonio import json_response, read_json

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
    body = await read_json(request, request.app[SETTINGS].max_body_bytes)
    session = await request.app[SESSIONS].create(caller.user, body, _idempotency_key(request))
    return json_response({"session": session}, status=201)


@routes.get("/api/sessions/active")
async def active_sessions(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    return json_response({"sessions": await request.app[SESSIONS].active(caller.versions)})


@routes.get("/api/sessions/my-recent")
async def my_recent_sessions(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    return json_response({"sessions": await request.app[SESSIONS].recent_for(caller.user, caller.versions)})


@routes.get("/api/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    session = await request.app[SESSIONS].get(request.match_info["id"], caller.versions)
    return json_response({"session": session})


@routes.post("/api/sessions/{id}/join")
async def join_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    session = await request.app[SESSIONS].join(request.match_info["id"], caller.user)
    return json_response({"session": session})


@routes.post("/api/sessions/{id}/end")
async def end_session(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    session = await request.app[SESSIONS].end(request.match_info["id"], caller.user)
    return json_response({"session": session, "message": "Session ended successfully"})
