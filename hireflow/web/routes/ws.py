"""`GET /api/ws`: the WebSocket endpoint (protocol in docs/websocket.md).

The handler checks the upgrade and authenticates (a header or cookie token before the 101, else the
first frame after it), then takes the connection over from aiohttp (web/takeover.py) and returns: an
idle socket keeps nothing of its request, handler task or middlewares, only its `Connection` and
`Link` (realtime/). From then on its messages go to `Endpoint`, one object for all the app's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from hireflow.errors import HireFlowError
from hireflow.realtime import protocol
from hireflow.realtime.connection import CLOSE_TIMEOUT_S, Connection
from hireflow.realtime.link import Link
from hireflow.web.appkeys import HUB, METRICS, ORIGINS, SEATS, SETTINGS, WS_ENDPOINT
from hireflow.web.auth import caller_for, socket_caller, token_from
from hireflow.web.jsonio import error_response
from hireflow.web.takeover import TakenOver, take_over

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

INBOUND_MAX_BYTES = 16 * 1024

_AUTH_FIRST = protocol.error_frame("auth_required", 'the first frame must be {"type":"auth","token":"…"}')


async def _verify(request: web.Request, token: str) -> tuple[str, float]:
    """(Clerk id, token expiry) of a valid token whose user exists; raises HireFlowError otherwise."""
    caller = await caller_for(request, token)
    return caller.claims.user_id, caller.claims.expires_at


async def _first_frame_auth(request: web.Request, link: Link) -> tuple[str, float] | bytes:
    """The identity from the first frame, or the error frame that says why there is none."""
    timeout_s = request.app[SETTINGS].ws_auth_timeout_s
    try:
        text = await link.first_message(timeout_s)
    except TimeoutError:
        return protocol.error_frame("auth_timeout", f"no auth frame within {timeout_s:g} s")
    if text is None:
        return _AUTH_FIRST
    try:
        parsed = protocol.parse(text)
        if not isinstance(parsed, protocol.Auth):
            return _AUTH_FIRST
        return await _verify(request, parsed.token)
    except protocol.ProtocolError:
        return _AUTH_FIRST
    except HireFlowError as exc:
        return protocol.error_frame(exc.code, exc.message)


async def _refuse(link: Link, error: bytes, code: int, reason: str) -> TakenOver:
    """Say why in an error frame, then close."""
    with contextlib.suppress(ConnectionError):  # the client may have gone already
        link.write(protocol.wire_text_frame(error))
    await _close(link, code, reason)
    return TakenOver()


async def _close(link: Link, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await link.close(code, reason)
    except TimeoutError:
        link.abort()


@routes.get("/api/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and not request.app[ORIGINS].allows(origin):
        why = request.app[ORIGINS].refusal(origin)
        log.warning("WebSocket upgrade refused: %s", why)
        return error_response(403, why, "origin_not_allowed")
    # No permessage-deflate nor sub-protocol: frames are prebuilt once for all subscribers, and a
    # deflate context per connection would cost far more memory than the bandwidth it saves.
    probe = web.WebSocketResponse(compress=False)
    if not probe.can_prepare(request).ok:
        await probe.prepare(request)  # raises aiohttp's 400 saying what is wrong with the upgrade

    identity: tuple[str, float] | None = None
    token = token_from(request)
    if token is not None:
        try:
            identity = await _verify(request, token)
        except HireFlowError:
            identity = None  # a stale cookie: the client may still authenticate with its first frame
    del token
    link = Link(INBOUND_MAX_BYTES)
    if not take_over(request, link, send_buffer_bytes=settings.ws_send_buffer_bytes):
        return TakenOver()  # the client has gone
    # aiohttp no longer knows this socket: until it is attached, the endpoint closes it on shutdown,
    # and a failure here must close it too.
    opening = request.app[WS_ENDPOINT].opening
    opening.add(link)
    try:
        return await _open(request, link, identity)
    except BaseException:
        link.abort()
        raise
    finally:
        opening.discard(link)


async def _open(request: web.Request, link: Link, identity: tuple[str, float] | None) -> TakenOver:
    """Authenticate the taken-over socket if the upgrade did not, take a seat, attach a `Connection`."""
    settings = request.app[SETTINGS]
    if identity is None:
        first = await _first_frame_auth(request, link)
        if isinstance(first, bytes):
            return await _refuse(link, first, protocol.CLOSE_AUTH, "Unauthorized")
        identity = first

    hub, seats = request.app[HUB], request.app[SEATS]
    user_id, expires_at = identity
    if not await seats.acquire(user_id, seats.seat_id(link)):
        limit = settings.quota_ws_per_user
        error = protocol.error_frame("rate_limited", f"Too many WebSockets (at most {limit} per user)")
        return await _refuse(link, error, protocol.CLOSE_POLICY, "too many connections")
    conn = Connection(
        link,
        hub,
        request.app[WS_ENDPOINT],
        user_id=user_id,
        expires_at=expires_at,
        queue_max=settings.ws_queue_max,
        send_timeout_s=settings.ws_send_timeout_s,
    )
    hub.attach(conn)
    conn.send(protocol.frame({"type": "ready", "userId": user_id}))
    # Messages sent meanwhile (a subscribe right after the auth frame) go to the endpoint now, in order;
    # if the socket closed meanwhile, the endpoint forgets it at once. Token expiry and liveness are
    # checked for all connections at once (realtime/sweep.py): no timer per socket.
    link.attach(conn)
    return TakenOver()


class Endpoint:
    """What authenticated sockets send, handled in order per socket: subscribe, unsubscribe, ping, a
    refreshed token. One per app; it holds no per-socket state."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.opening: set[Link] = set()
        """Sockets taken over and not yet attached (authenticating, taking a seat)."""

    async def close_opening(self, code: int, reason: str) -> None:
        """On shutdown: the sockets not attached to the hub yet are closed too."""
        await asyncio.gather(*(_close(link, code, reason) for link in list(self.opening)))

    def gone(self, conn: Connection) -> None:
        app = self._app
        app[HUB].detach(conn)
        app[SEATS].release_soon(conn.user_id, app[SEATS].seat_id(conn.ws))

    async def message(self, conn: Connection, text: str | None) -> None:
        if text is None:
            conn.send(protocol.error_frame("bad_message", "frames must be JSON text"))
            return
        app = self._app
        hub = app[HUB]
        try:
            message = protocol.parse(text)
        except protocol.ProtocolError as exc:
            conn.send(protocol.error_frame(exc.code, exc.message))
            return
        if isinstance(message, protocol.Ping):
            conn.send(protocol.PONG)
        elif isinstance(message, protocol.Subscribe):
            limit = app[SETTINGS].quota_subs_per_socket
            if message.topic not in conn.subs and len(conn.subs) >= limit:
                app[METRICS].quota_rejections.labels("ws_subscriptions").inc()
                conn.send(protocol.error_frame("rate_limited", f"Too many subscriptions (at most {limit} per socket)"))
                return
            hub.subscribe(conn, message.topic, message.epoch, message.since, message.invite_code)
        elif isinstance(message, protocol.Unsubscribe):
            hub.unsubscribe(conn, message.topic)
        elif isinstance(message, protocol.Auth):
            await self._refresh(conn, message.token)

    async def _refresh(self, conn: Connection, token: str) -> None:
        try:
            caller = await socket_caller(self._app, token)
        except HireFlowError as exc:
            conn.send(protocol.error_frame(exc.code, exc.message))
            return
        if caller.claims.user_id != conn.user_id:
            conn.send(protocol.error_frame("unauthorized", "token belongs to another user"))
            conn.close_soon(protocol.CLOSE_AUTH, "user changed", flush=True)
            return
        conn.expires_at = max(conn.expires_at, caller.claims.expires_at)
        conn.send(protocol.AUTH_OK)
