"""Who has the pad open (`pad.presence` on `session:<id>` of `/api/ws`), across instances, and what is
left of a SIGKILLed instance's sockets: their `pad.presence` and their awareness, each gone within its
time-out."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pycrdt import Awareness, Doc, create_awareness_message, read_message

from hireflow import embedded
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.pad import new_session, open_ws, peer, start_web
from tests.support.workers import eventually
from tests.support.ws import WsClient, WsFactory

NOBODY = {"host": False, "participant": False}


async def _presence(sub: WsClient, timeout_s: float = 5.0) -> dict[str, bool]:
    """The next `pad.presence` event's state (other events of the topic are skipped)."""
    while True:
        frame = await sub.recv_type("event", timeout_s)
        if frame["event"] == "pad.presence":
            state: dict[str, bool] = frame["pad"]
            return state


async def test_who_has_the_pad_open_is_announced_across_instances(client, second, factory: Factory, ws_client):
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(client, host, guest)
    lobby = await ws_client(client, host.token)  # the host's lobby page, on instance A
    snapshot = await lobby.subscribe(f"session:{session_id}")
    assert snapshot["pad"] == NOBODY

    guest_pad = await peer(second, session_id, guest)  # the candidate opens the pad on instance B
    assert await _presence(lobby) == {"host": False, "participant": True}
    second_tab = await peer(client, session_id, guest)  # and again on A: still the same state, no event
    host_pad = await peer(second, session_id, host)
    assert await _presence(lobby) == {"host": True, "participant": True}

    await guest_pad.close()  # the candidate still has the second tab open: no event
    await host_pad.close()
    assert await _presence(lobby) == {"host": False, "participant": True}
    late = await ws_client(second, guest.token)  # a later subscriber's snapshot says so too
    assert (await late.subscribe(f"session:{session_id}"))["pad"] == {"host": False, "participant": True}

    await second_tab.close()
    assert await _presence(lobby) == NOBODY
    assert await _presence(late) == NOBODY


@pytest.fixture
async def killable(infra, db_name, fake_clerk, redis, mongo, tmp_path: Path) -> AsyncIterator[Any]:
    """`start(**settings)`: instance A in this process and a `run_web.py` process B (to SIGKILL), with
    the same settings; returns (A's test client, B's base URL, B's process)."""
    started: list[Any] = []

    async def start(**overrides: Any) -> tuple[Any, str, Any]:
        settings = make_settings(infra, db_name, *fake_clerk, **overrides)
        a = await serve(create_app(settings))
        started.append(a.close)
        port = embedded.free_port()
        web = start_web(settings.model_copy(update={"port": port}), tmp_path / "web.log")
        started.append(web)
        await asyncio.to_thread(embedded.wait_for_port, port, web)
        return a, f"http://127.0.0.1:{port}", web

    yield start
    for item in reversed(started):
        if callable(item):
            await item()
        elif item.poll() is None:
            item.kill()
            item.wait()


def _kill(web: Any) -> float:
    web.send_signal(signal.SIGKILL)
    web.wait(10)
    return time.monotonic()


@pytest.mark.timeout(90)
async def test_a_killed_instances_pad_presence_clears_within_the_timeout(
    killable, factory: Factory, ws_client: WsFactory
):
    timeout_s = 3.0
    a, b_url, b_process = await killable(pad_presence_timeout_s=timeout_s)
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(a, host, guest)
    lobby = await ws_client(a, host.token)
    await lobby.subscribe(f"session:{session_id}")
    on_b = await peer(b_url, session_id, guest)
    assert await _presence(lobby) == {"host": False, "participant": True}
    await asyncio.sleep(timeout_s)  # B renews its lease meanwhile: nothing changes
    killed_at = await asyncio.to_thread(_kill, b_process)
    assert await _presence(lobby, timeout_s=2 * timeout_s) == NOBODY
    assert time.monotonic() - killed_at <= timeout_s
    with contextlib.suppress(Exception):
        await on_b.close()


class Watcher:
    """A raw pad socket that applies every awareness frame it receives to its own `Awareness`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.seen = Awareness(Doc())
        self.seen.set_local_state(None)
        self._ws = ws
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == 1:
                self.seen.apply_awareness_update(read_message(msg.data[1:]), "server")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.mark.timeout(90)
async def test_a_killed_instances_awareness_is_removed_within_the_timeout(killable, factory: Factory):
    timeout_s = 2.0
    a, b_url, b_process = await killable(pad_awareness_timeout_s=timeout_s)
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(a, host, guest)
    watcher_session, watcher_ws = await open_ws(a, session_id, host.token)
    watcher = Watcher(watcher_ws)
    typist_session, typist_ws = await open_ws(b_url, session_id, guest.token)
    doc = Doc()
    mine = Awareness(doc)

    async def renew() -> None:  # what y-protocols clients do (every 15 s with the default 30 s)
        while True:
            mine.set_local_state({"user": {"name": "Guest"}, "cursor": 7})
            await typist_ws.send_bytes(create_awareness_message(mine.encode_awareness_update([doc.client_id])))
            await asyncio.sleep(timeout_s / 4)

    renewing = asyncio.create_task(renew())
    try:

        async def present() -> bool:
            return watcher.seen.states.get(doc.client_id, {}).get("cursor") == 7

        async def gone() -> bool:
            return doc.client_id not in watcher.seen.states

        await eventually(present, timeout_s=5)
        await asyncio.sleep(2 * timeout_s)  # renewed through B: never timed out while B lives
        assert await present()
        killed_at = await asyncio.to_thread(_kill, b_process)
        await eventually(gone, timeout_s=3 * timeout_s)
        # Stale presence is swept once a second (PAD maintenance), so: the time-out plus that tick.
        assert time.monotonic() - killed_at <= timeout_s + 1.5
    finally:
        renewing.cancel()
        with contextlib.suppress(BaseException):
            await renewing
        await watcher.stop()
        for ws, session in ((watcher_ws, watcher_session), (typist_ws, typist_session)):
            with contextlib.suppress(Exception):
                await ws.close()
            await session.close()
