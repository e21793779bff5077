"""Taking a WebSocket's connection over from aiohttp at the handshake (see realtime/link.py for why).

aiohttp has no API for this. What it relies on, in aiohttp 3.14 (pinned in requirements.lock; the
WebSocket tests under tests/realtime exercise every step through real sockets):
- the request handler's protocol (`request.protocol`, aiohttp's `RequestHandler`) forgets the
  transport when its `transport` is None and `connection_lost` is called: it removes itself from the
  server's connections (so shutdown does not wait for the socket), cancels its keep-alive timer and
  never writes to or closes the transport again; with its `_task_handler` None it cancels no task
  (with `handler_cancellation` on it would cancel the handler still authenticating the socket);
- bytes the client sent after its request head are in its `_message_tail` (clients must wait for the
  101 before sending frames, so this is normally empty);
- a handler returning a response that is already "prepared" and writes nothing ends the request, and
  the handler task with it: the request, its headers and the middlewares' frames are freed.
The 101 is written here, with the same headers aiohttp's handshake writes (the extension and
sub-protocol are never negotiated on this route), after `WebSocketResponse.can_prepare` has
validated the upgrade exactly as aiohttp would.
"""

from __future__ import annotations

import base64
import hashlib
import socket

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from hireflow.realtime.link import Link

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class TakenOver(web.StreamResponse):
    """What the handler returns once the connection is a `Link`'s: aiohttp has nothing left to send."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def prepared(self) -> bool:
        return True


def take_over(request: web.Request, link: Link, *, send_buffer_bytes: int) -> bool:
    """Answer the (validated) upgrade with 101 and give the connection to `link`, synchronously: no
    byte can reach aiohttp's parser in between. False when the client has already gone."""
    handler = request.protocol
    transport = request.transport
    if handler is None or transport is None or transport.is_closing():
        return False
    key = request.headers["Sec-WebSocket-Key"].encode()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455 §4.2.2
    tail: bytes = getattr(handler, "_message_tail", b"")
    handler.transport = None
    handler._task_handler = None  # so that `connection_lost` cancels nothing: the handler goes on
    handler.connection_lost(None)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    transport.set_protocol(link)
    link.connection_made(transport)
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    transport.resume_reading()
    if tail:
        link.data_received(tail)
    return True
