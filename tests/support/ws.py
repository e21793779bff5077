"""WebSocket test clients over real sockets, and a second web instance sharing Redis and MongoDB."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from hireflow.settings import Settings
from hireflow.web.app import create_app
from tests.conftest import ORIGIN, serve
from tests.support.wsframes import masked_text_frame, upgrade_request

RECV_TIMEOUT_S = 5.0


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.ws = ws
        self._session = session

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    async def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout_s)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r} {msg.extra!r}")
        data: dict[str, Any] = orjson.loads(msg.data)
        return data

    async def recv_type(self, kind: str, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        """The next frame of this type, skipping others (pongs, events of other topics)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            frame = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame["type"] == kind:
                return frame

    async def subscribe(self, topic: str, **resume: Any) -> dict[str, Any]:
        await self.send({"type": "subscribe", "topic": topic, **resume})
        return await self.recv_type("snapshot")

    async def closed(self, timeout_s: float = RECV_TIMEOUT_S) -> int | None:
        """Read until the server closes; the close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout_s)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code
            if msg.type == aiohttp.WSMsgType.ERROR:
                return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._session.close()


WsFactory = Callable[..., Awaitable[WsClient]]


def small_receive_buffer(addr_info: Any) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@pytest.fixture
async def ws_client() -> AsyncIterator[WsFactory]:
    """Connect to an app's `/api/ws`: `await ws_client(client, token=…, how="header"|"cookie"|"frame")`."""
    opened: list[WsClient] = []

    async def connect(
        app_client: TestClient,
        token: str | None = None,
        *,
        how: str = "header",
        expect_ready: bool = True,
        origin: str | None = ORIGIN,
        slow_reader: bool = False,
    ) -> WsClient:
        connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer) if slow_reader else None
        session = aiohttp.ClientSession(connector=connector)
        headers: dict[str, str] = {}
        if token is not None and how == "header":
            headers["Authorization"] = f"Bearer {token}"
        if token is not None and how == "cookie":
            headers["Cookie"] = f"__session={token}"
        try:
            ws = await session.ws_connect(app_client.make_url("/api/ws"), headers=headers, origin=origin)
        except BaseException:
            await session.close()
            raise
        client = WsClient(ws, session)
        opened.append(client)
        if token is not None and how == "frame":
            await client.send({"type": "auth", "token": token})
        if expect_ready:
            ready = await client.recv()
            assert ready["type"] == "ready", ready
        return client

    yield connect
    for client in opened:
        await client.close()


@pytest.fixture
async def second(settings: Settings, client: TestClient) -> AsyncIterator[TestClient]:
    """A second web instance on another port, sharing Redis and MongoDB with `client`."""
    other = await serve(create_app(settings))
    yield other
    await other.close()


class StuckClient:
    """A WebSocket client on a raw socket with a tiny receive buffer that, once subscribed, stops
    reading: the server's writes back up into its own queue, as with a real stalled browser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, app_client: TestClient, token: str) -> StuckClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app_client.port or 0))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(upgrade_request("127.0.0.1", token))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(masked_text_frame(orjson.dumps(message)))

    async def read_all(self, timeout_s: float) -> bytes:
        """Everything the server sent, until it closes the connection or `timeout_s` passes."""
        chunks = []
        try:
            async with asyncio.timeout(timeout_s):
                while chunk := await self.reader.read(65536):
                    chunks.append(chunk)
        except (TimeoutError, ConnectionError):
            pass
        return b"".join(chunks)

    def close(self) -> None:
        self.writer.close()
