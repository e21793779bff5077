"""Pad test clients: pycrdt documents synced over a real WebSocket by pycrdt's own Provider."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp.test_utils import TestClient
from pycrdt import Doc, Map, Provider, Text

from hireflow.settings import Settings
from tests.conftest import ORIGIN, Factory, User
from tests.support.workers import ROOT, settings_env


class WsChannel:
    """pycrdt's `Channel` over an aiohttp client WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, path: str) -> None:
        self.ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WsChannel:
        return self

    async def __anext__(self) -> bytes:
        msg = await self.ws.receive()
        if msg.type == aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        raise StopAsyncIteration

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(message)

    async def recv(self) -> bytes:
        return await self.__anext__()


async def open_ws(
    target: TestClient | str,
    session_id: str,
    token: str | None,
    *,
    how: str = "query",
    origin: str | None = ORIGIN,
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A raw pad WebSocket on an in-process app (`TestClient`) or a server's base URL."""
    session = aiohttp.ClientSession()
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if token is not None:
        if how == "query":
            params["token"] = token
        elif how == "header":
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers["Cookie"] = f"__session={token}"
    try:
        path = f"/api/sessions/{session_id}/pad"
        url = target + path if isinstance(target, str) else str(target.make_url(path))
        ws = await session.ws_connect(url, headers=headers, params=params, origin=origin)
    except BaseException:
        await session.close()
        raise
    return session, ws


class Peer:
    """A replica: a pycrdt Doc kept in sync with the server by pycrdt's Provider."""

    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, doc: Doc[Any] | None = None
    ) -> None:
        self.session, self.ws = session, ws
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.code = self.doc.get("code", type=Text)
        self.meta = self.doc.get("meta", type=Map)
        self.provider = Provider(self.doc, WsChannel(ws, "pad"))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Peer:
        self._task = asyncio.create_task(self.provider.start())
        await asyncio.wait_for(self.provider.started.wait(), 5)
        await asyncio.wait_for(self.provider.synced.wait(), 5)
        return self

    @property
    def text(self) -> str:
        return str(self.code)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self.provider.stop()
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.ws.close()
        await self.session.close()


async def peer(
    target: TestClient | str, session_id: str, user: User, *, how: str = "query", doc: Doc[Any] | None = None
) -> Peer:
    """A synced replica; pass the `doc` of a closed one to reconnect it (as a provider does)."""
    session, ws = await open_ws(target, session_id, user.token, how=how)
    return await Peer(session, ws, doc).start()


async def new_session(app_client: TestClient, host: User, guest: User | None = None) -> str:
    resp = await app_client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
    assert resp.status == 201, await resp.text()
    session_id: str = (await resp.json())["session"]["_id"]
    if guest is not None:
        joined = await app_client.post(f"/api/sessions/{session_id}/join", headers=guest.headers)
        assert joined.status == 200, await joined.text()
    return session_id


class Editors(NamedTuple):
    session_id: str
    host: User
    guest: User
    a: Peer
    """The host's replica, on the first server."""
    b: Peer
    """The guest's replica, on the second server."""


async def two_editors(one: TestClient, two: TestClient | str, factory: Factory) -> Editors:
    """A session with a host and a guest, each with a synced replica of its pad: the host's on `one`
    (which also creates the session), the guest's on `two`."""
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(one, host, guest)
    a = await peer(one, session_id, host)
    return Editors(session_id, host, guest, a, await peer(two, session_id, guest))


def start_web(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A real `run_web.py` process (so that it can be SIGKILLed)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run_web.py")], env=settings_env(settings), stdout=log, stderr=log
        )
