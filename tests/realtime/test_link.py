"""`/api/ws` after the take-over (realtime/link.py, web/takeover.py), through raw sockets: frames as
RFC 6455 allows clients to send them, its violations, the closing handshake, liveness, and what an
idle socket no longer keeps (aiohttp's request and handler)."""

from __future__ import annotations

import asyncio
import gc

import orjson
from aiohttp import web

from hireflow.web.app import create_app
from hireflow.web.appkeys import HUB
from tests.conftest import Factory, serve
from tests.support.wsframes import client_frame, server_frames, upgrade_request

OP_TEXT, OP_CONT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x0, 0x8, 0x9, 0xA


class Raw:
    """A WebSocket client on a bare socket, reading the server's frames one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.data = reader, writer, b""

    @classmethod
    async def connect(cls, port: int, token: str) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(f"127.0.0.1:{port}", token))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def frame(self, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """The next frame; (-1, b"") when the server closed the connection."""
        async with asyncio.timeout(timeout_s):
            while True:
                frames = server_frames(self.data)
                if frames:
                    opcode, payload = frames[0]
                    self.data = self.data[_size(self.data) :]
                    return opcode, payload
                chunk = await self.reader.read(65536)
                if not chunk:
                    return -1, b""
                self.data += chunk

    async def message(self) -> dict[str, object]:
        """The next text message (pings skipped)."""
        opcode, payload = await self.frame()
        while opcode == OP_PING:
            opcode, payload = await self.frame()
        assert opcode == OP_TEXT, (opcode, payload)
        data: dict[str, object] = orjson.loads(payload)
        return data

    async def close_code(self) -> int | None:
        """Read up to the server's close frame; its code (None if the socket ended without one)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == -1:
                return None
            if opcode == OP_CLOSE:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.close()


def _size(data: bytes) -> int:
    """Length of the first complete frame in `data`."""
    n, i = data[1] & 0x7F, 2
    if n == 126:
        n, i = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        n, i = int.from_bytes(data[2:10], "big"), 10
    return i + n


async def _ready(client, factory: Factory) -> Raw:  # type: ignore[no-untyped-def]
    raw = await Raw.connect(client.port, (await factory.user()).token)
    assert (await raw.message())["type"] == "ready"
    return raw


async def test_fragments_with_a_ping_between_them(client, factory: Factory):
    raw = await _ready(client, factory)
    raw.send(
        client_frame(OP_TEXT, b'{"type":', fin=False),
        client_frame(OP_PING, b"hi"),
        client_frame(OP_CONT, b'"pi', fin=False),
        client_frame(OP_CONT, b'ng"}'),
    )
    assert await raw.frame() == (OP_PONG, b"hi")
    assert await raw.message() == {"type": "pong"}
    raw.close()


async def test_messages_sent_with_the_auth_frame_are_handled_in_order(client, factory: Factory):
    user = await factory.user()
    raw = await Raw.connect(client.port, "")
    auth = orjson.dumps({"type": "auth", "token": user.token})
    raw.send(client_frame(OP_TEXT, auth), client_frame(OP_TEXT, b'{"type":"subscribe","topic":"lobby"}'))
    assert (await raw.message())["type"] == "ready"
    assert (await raw.message())["type"] == "snapshot"
    raw.close()


async def test_protocol_violations_close_with_their_code(client, factory: Factory):
    for frames, code in (
        (client_frame(OP_TEXT, b'{"type":"ping"}', masked=False), 1002),  # clients must mask
        (client_frame(OP_CONT, b"x"), 1002),  # a continuation of nothing
        (client_frame(OP_PING, b"x", fin=False), 1002),  # a fragmented control frame
        (client_frame(0x3, b"x"), 1002),  # a reserved opcode
        (client_frame(OP_TEXT, b'{"type":"\xff"}'), 1007),  # text that is not UTF-8
        (client_frame(OP_CLOSE, (999).to_bytes(2, "big")), 1002),  # an invalid close code
    ):
        raw = await _ready(client, factory)
        raw.send(frames)
        assert await raw.close_code() == code, frames
        raw.close()


async def test_binary_frames_get_an_error_and_the_socket_stays(client, factory: Factory):
    raw = await _ready(client, factory)
    raw.send(client_frame(0x2, b"\x00\x01"), client_frame(OP_TEXT, b'{"type":"ping"}'))
    assert (await raw.message())["code"] == "bad_message"
    assert await raw.message() == {"type": "pong"}
    raw.close()


async def test_client_close_is_answered_and_the_socket_forgotten(client, factory: Factory):
    raw = await _ready(client, factory)
    raw.send(client_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert await raw.close_code() == 1000
    assert await raw.frame() == (-1, b"")  # then the server closes the TCP connection
    raw.close()


async def test_a_silent_peer_is_pinged_then_dropped_and_an_answering_one_stays(settings, factory: Factory):
    app_client = await serve(create_app(settings.model_copy(update={"ws_heartbeat_s": 1.0})))
    try:
        silent, answering = await _ready(app_client, factory), await _ready(app_client, factory)
        hub = app_client.app[HUB]
        assert await silent.frame() == (OP_PING, b"")  # after ~1 s of silence
        assert await answering.frame() == (OP_PING, b"")
        answering.send(client_frame(OP_PONG, b""))
        # The silent one is dropped without a close frame (nobody would read it), half a beat later.
        assert await silent.frame(timeout_s=4) == (-1, b"")
        answering.send(client_frame(OP_TEXT, b'{"type":"ping"}'))
        assert await answering.message() == {"type": "pong"}
        assert hub.connection_count == 1
        silent.close()
        answering.close()
    finally:
        await app_client.close()


async def test_an_idle_socket_keeps_no_request_nor_handler(client, factory: Factory):
    """What the take-over is for: once authenticated, aiohttp holds nothing of the socket."""

    def requests() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, web.BaseRequest))

    before = requests()
    raws = [await _ready(client, factory) for _ in range(5)]
    for raw in raws:
        raw.send(client_frame(OP_TEXT, b'{"type":"subscribe","topic":"lobby"}'))
        assert (await raw.message())["type"] == "snapshot"
    assert requests() <= before
    assert not client.server.runner.server.connections  # type: ignore[union-attr]
    assert client.app[HUB].connection_count == 5
    for raw in raws:
        raw.send(client_frame(OP_TEXT, b'{"type":"ping"}'))
        assert await raw.message() == {"type": "pong"}
        raw.close()


async def test_stopping_the_server_closes_a_socket_still_authenticating(settings, factory: Factory):
    """aiohttp no longer knows a taken-over socket: one waiting for its auth frame gets 1001 on shutdown."""
    app_client = await serve(create_app(settings))
    ready = await _ready(app_client, factory)
    waiting = await Raw.connect(app_client.port or 0, "")
    await app_client.close()
    assert await ready.close_code() == 1001
    assert await waiting.close_code() == 1001
    ready.close()
    waiting.close()
