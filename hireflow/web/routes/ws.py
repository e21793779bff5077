"""`GET /api/ws`: the WebSocket endpoint (protocol in CONTRACT.md, "WebSocket")."""

from __future__ import annotations

import contextlib
import logging
import socket

from aiohttp import WSMsgType, web

from hireflow.errors import HireFlowError
from hireflow.realtime import protocol
from hireflow.realtime.connection import Connection
from hireflow.web.appkeys import HUB, METRICS, ORIGINS, SEATS, SETTINGS
from hireflow.web.auth import caller_for, token_from
from hireflow.web.jsonio import error_response

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

INBOUND_MAX_BYTES = 16 * 1024


async def _verify(request: web.Request, token: str) -> tuple[str, float]:
    """(Clerk id, token expiry) of a valid token whose user exists; raises HireFlowError otherwise."""
    caller = await caller_for(request, token)
    return caller.claims.user_id, caller.claims.expires_at


async def _first_frame_auth(request: web.Request, ws: web.WebSocketResponse) -> tuple[str, float] | bytes:
    """The identity from the first frame, or the error frame that says why there is none."""
    timeout_s = request.app[SETTINGS].ws_auth_timeout_s
    try:
        msg = await ws.receive(timeout=timeout_s)
    except TimeoutError:
        return protocol.error_frame("auth_timeout", f"no auth frame within {timeout_s:g} s")
    if msg.type != WSMsgType.TEXT:
        return _AUTH_FIRST
    try:
        parsed = protocol.parse(msg.data)
        if not isinstance(parsed, protocol.Auth):
            return _AUTH_FIRST
        return await _verify(request, parsed.token)
    except protocol.ProtocolError:
        return _AUTH_FIRST
    except HireFlowError as exc:
        return protocol.error_frame(exc.code, exc.message)


_AUTH_FIRST = protocol.error_frame("auth_required", 'the first frame must be {"type":"auth","token":"…"}')


@routes.get("/api/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and not request.app[ORIGINS].allows(origin):
        why = request.app[ORIGINS].refusal(origin)
        log.warning("WebSocket upgrade refused: %s", why)
        return error_response(403, why, "origin_not_allowed")
    # No permessage-deflate: frames are prebuilt once for all subscribers, and a deflate context per
    # connection would cost far more memory than the bandwidth it saves on small JSON events.
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s, max_msg_size=INBOUND_MAX_BYTES, timeout=2.0, compress=False
    )
    await ws.prepare(request)
    _bound_send_buffer(request, settings.ws_send_buffer_bytes)

    identity: tuple[str, float] | bytes | None = None
    token = token_from(request)
    if token is not None:
        try:
            identity = await _verify(request, token)
        except HireFlowError:
            identity = None  # a stale cookie: the client may still authenticate with its first frame
    del token  # this frame lives as long as the socket: no copy of a ~1 KB JWT per idle connection
    if identity is None:
        identity = await _first_frame_auth(request, ws)
    if isinstance(identity, bytes):
        if not ws.closed:  # the client may have gone already
            with contextlib.suppress(ConnectionError):
                await ws.send_str(identity.decode())  # says why, before the 4001 close
        await ws.close(code=protocol.CLOSE_AUTH, message=b"Unauthorized")
        return ws

    hub, seats = request.app[HUB], request.app[SEATS]
    user_id, expires_at = identity
    seat = seats.seat_id(ws)
    if not await seats.acquire(user_id, seat):
        limit = settings.quota_ws_per_user
        await ws.send_str(
            protocol.error_frame("rate_limited", f"Too many WebSockets (at most {limit} per user)").decode()
        )
        await ws.close(code=protocol.CLOSE_POLICY, message=b"too many connections")
        return ws
    conn = Connection(
        ws,
        request.transport,
        hub,
        user_id=user_id,
        expires_at=expires_at,
        queue_max=settings.ws_queue_max,
        send_timeout_s=settings.ws_send_timeout_s,
    )
    hub.attach(conn)
    conn.send(protocol.frame({"type": "ready", "userId": user_id}))
    # Token expiry is checked for all connections at once (realtime/expiry.py): no timer per socket.
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                conn.send(protocol.error_frame("bad_message", "frames must be JSON text"))
                continue
            await _handle(request, conn, msg.data)
    finally:
        hub.detach(conn)
        seats.release_soon(user_id, seat)  # before any await: aiohttp may cancel this handler on disconnect
        await conn.stop()
    return ws


def _bound_send_buffer(request: web.Request, size: int) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def _handle(request: web.Request, conn: Connection, raw: str) -> None:
    hub = request.app[HUB]
    try:
        message = protocol.parse(raw)
    except protocol.ProtocolError as exc:
        conn.send(protocol.error_frame(exc.code, exc.message))
        return
    if isinstance(message, protocol.Ping):
        conn.send(protocol.PONG)
    elif isinstance(message, protocol.Subscribe):
        limit = request.app[SETTINGS].quota_subs_per_socket
        if message.topic not in conn.subs and len(conn.subs) >= limit:
            request.app[METRICS].quota_rejections.labels("ws_subscriptions").inc()
            conn.send(protocol.error_frame("rate_limited", f"Too many subscriptions (at most {limit} per socket)"))
            return
        hub.subscribe(conn, message.topic, message.epoch, message.since, message.invite_code)
    elif isinstance(message, protocol.Unsubscribe):
        hub.unsubscribe(conn, message.topic)
    elif isinstance(message, protocol.Auth):
        try:
            user_id, expires_at = await _verify(request, message.token)
        except HireFlowError as exc:
            conn.send(protocol.error_frame(exc.code, exc.message))
            return
        if user_id != conn.user_id:
            conn.send(protocol.error_frame("unauthorized", "token belongs to another user"))
            conn.close_soon(protocol.CLOSE_AUTH, "user changed", flush=True)
            return
        conn.expires_at = max(conn.expires_at, expires_at)
        conn.send(protocol.AUTH_OK)
