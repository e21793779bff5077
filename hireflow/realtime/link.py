"""A server-side WebSocket as a bare asyncio protocol, for the sockets that stay open for hours.

aiohttp's `WebSocketResponse` keeps, for each socket and for its whole life, the request (its header
multidicts, the JWT among them), the handler task with a coroutine frame per middleware, a reader
queue, a parser, a writer and a heartbeat timer: ~12 KiB of Python objects per idle socket, more than
half of what one costs. After the handshake `/api/ws` takes the transport over (web/takeover.py) and
gives it to a `Link`: one small object with slots, which parses the few frames clients send (RFC
6455 §5: masked, possibly fragmented, control frames between fragments), answers pings, and speaks
the closing handshake. Sending is `transport.write` of complete frames; liveness is checked by one
sweep per process (realtime/sweep.py), not by a timer per socket.

What it hands to its owner: each complete text message (`received`), `None` for a binary one, and
`lost()` once the transport is gone. Until an owner is attached (while the route authenticates the
socket) messages wait in a short list, the first one possibly taken by `first_message`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, cast

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_TEXT = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
_VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
MAX_EARLY_MESSAGES = 16
"""Messages a client may send before its socket is authenticated; past that it is closed (1008)."""


class Owner(Protocol):
    def received(self, text: str | None) -> None:
        """A complete message: its text, or None for a binary one."""

    def lost(self) -> None:
        """The transport is gone (closed by either side, or reset)."""


def frame(opcode: int, payload: bytes) -> bytes:
    """A complete, unmasked server frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def close_frame(code: int, reason: str) -> bytes:
    return frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:123])


def _unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Link(asyncio.Protocol):
    __slots__ = (
        "_buffer",
        "_close_sent",
        "_done",
        "_drain",
        "_early",
        "_first",
        "_fragments",
        "_max_message_bytes",
        "_write_paused",
        "close_code",
        "closed",
        "last_heard_s",
        "owner",
        "ping_sent_s",
        "transport",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self._max_message_bytes = max_message_bytes
        self.transport: asyncio.Transport | None = None
        self.owner: Owner | None = None
        self.closed = False
        """A close frame was sent or received, or the transport is gone: nothing more may be sent."""
        self.close_code: int | None = None
        self.last_heard_s = time.monotonic()
        """When the client last sent anything (monotonic): the liveness sweep pings past `heartbeat_s`."""
        self.ping_sent_s = 0.0
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._early: list[str | None] | None = []
        self._first: asyncio.Future[str | None] | None = None
        self._close_sent = False
        self._done: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False

    # --- the owner's side ----------------------------------------------------------------------

    def attach(self, owner: Owner) -> None:
        """Hand every message from now on to `owner`, first those that arrived before it."""
        early, self._early = self._early, None
        self.owner = owner
        for text in early or ():
            owner.received(text)
        if self.transport is None:
            owner.lost()

    async def first_message(self, timeout_s: float) -> str | None:
        """The first message if it is text; None if it is binary, or the socket closed first. Raises
        TimeoutError if none came within `timeout_s`."""
        if self._early:
            return self._early.pop(0)
        if self.closed:
            return None
        self._first = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                return await self._first
        finally:
            self._first = None

    async def send(self, payload: bytes) -> None:
        """Send a text message; wait while the transport's buffer is above its high-water mark."""
        self.write(frame(OP_TEXT, payload))
        if self._write_paused:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drain)
            if self.transport is None:
                raise ConnectionResetError("connection lost")

    def write(self, wire: bytes) -> None:
        """Write a complete frame now (nothing may follow a close frame)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the WebSocket is closing")
        self.transport.write(wire)

    def ping(self) -> None:
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(OP_PING, b""))
            self.ping_sent_s = time.monotonic()

    async def close(self, code: int, reason: str = "") -> None:
        """The closing handshake: send a close frame, wait for the client's (or the end of the
        connection), then close the transport. The caller bounds the wait; `abort` after it."""
        if self.transport is None:
            return
        if not self._close_sent:
            self._send_close(code, reason)
        if self.transport is not None:
            if self._done is None:
                self._done = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._done)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, though not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_heard_s = time.monotonic()
        buffer = self._buffer + data if self._buffer else data
        try:
            used = self._parse(buffer)
        except ProtocolViolation as exc:
            self._buffer = b""
            self._fail(exc.code, exc.reason)
            return
        self._buffer = buffer[used:]

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self.closed = True
        if self.close_code is None:
            self.close_code = 1006
        for future in (self._done, self._drain, self._first):
            if future is not None and not future.done():
                future.set_result(None)
        if self.owner is not None:
            self.owner.lost()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None:
            drain, self._drain = self._drain, None
            if not drain.done():
                drain.set_result(None)

    # --- frames --------------------------------------------------------------------------------

    def _parse(self, buffer: bytes) -> int:
        """Handle each complete frame in `buffer`; how many bytes were used."""
        pos, end = 0, len(buffer)
        # After our close frame the client's frames are still read, up to its own close frame.
        while end - pos >= 2 and self.transport is not None and not self.transport.is_closing():
            b0, b1 = buffer[pos], buffer[pos + 1]
            opcode, length, head = b0 & 0x0F, b1 & 0x7F, 2
            if b0 & 0x70 or not b1 & 0x80:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "reserved bits set or frame not masked")
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if opcode >= OP_CLOSE and (length > 125 or not b0 & 0x80):
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "bad control frame")
            if length > self._max_message_bytes:
                raise ProtocolViolation(CLOSE_TOO_BIG, "message too big")
            start = pos + head + 4
            if end < start + length:
                break
            payload = _unmask(buffer[start : start + length], buffer[pos + head : start])
            pos = start + length
            self._frame(opcode, bool(b0 & 0x80), payload)
        return pos

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == OP_PING:
            if not self.closed and self.transport is not None:
                self.transport.write(frame(OP_PONG, payload))
            return
        if opcode == OP_PONG:
            return
        if opcode == OP_CLOSE:
            self._close_received(payload)
            return
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:
                self._message(opcode, payload)
                return
            self._fragments = [bytes((opcode,))]
        else:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        self._fragments.append(payload)
        if sum(map(len, self._fragments)) - 1 > self._max_message_bytes:
            raise ProtocolViolation(CLOSE_TOO_BIG, "message too big")
        if fin:
            first, *parts = self._fragments
            self._fragments = None
            self._message(first[0], b"".join(parts))

    def _message(self, opcode: int, payload: bytes) -> None:
        text: str | None = None
        if opcode == OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise ProtocolViolation(CLOSE_INVALID_TEXT, "text is not UTF-8") from None
        if self.closed:
            return
        if self.owner is not None:
            self.owner.received(text)
        elif self._first is not None and not self._first.done():
            self._first.set_result(text)
        elif self._early is not None:
            if len(self._early) >= MAX_EARLY_MESSAGES:
                raise ProtocolViolation(CLOSE_POLICY, "too many messages before authentication")
            self._early.append(text)

    def _close_received(self, payload: bytes) -> None:
        code = CLOSE_NORMAL
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            if not (code in _VALID_CLOSE_CODES or 3000 <= code <= 4999):
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "invalid close code")
        elif payload:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "invalid close frame")
        if self.close_code is None:
            self.close_code = code
        if not self._close_sent:
            self._send_close(CLOSE_NORMAL, "")  # the reply of the closing handshake
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = self.closed = True
        if self.close_code is None:
            self.close_code = code
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(close_frame(code, reason))

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation: say why in a close frame, then drop the connection."""
        if not self._close_sent:
            self._send_close(code, reason)
        self.closed = True
        if self.transport is not None:
            self.transport.close()
