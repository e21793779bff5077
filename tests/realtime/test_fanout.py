"""One lobby event to many sockets through the real app and the real `Connection` code: on asyncio's
loop in-process, and on uvloop in a real `run_web.py` process (its transports are C, and queue the
bytes until the end of the loop iteration). Sockets reset just before the event (their `send` fails
in the middle of the fan-out), a connection closed by the server in the same loop iteration as the
event (nothing may follow its close frame), a stalled socket (queued, conflated, never blocking the
others): every other socket gets every event once, in order."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson

from hireflow import embedded
from hireflow.realtime.bus import Bus, BusEvent
from hireflow.realtime.protocol import event_body
from hireflow.web.app import create_app
from hireflow.web.appkeys import HUB, REDIS, SETTINGS
from tests.conftest import Factory, serve
from tests.support.workers import ROOT, settings_env
from tests.support.ws import StuckClient
from tests.support.wsframes import masked_text_frame, server_frames, upgrade_request

SUBSCRIBERS = 300
EVENTS = 5

Sock = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _subscribe_all(port: int, token: str, n: int) -> list[Sock]:
    sockets: list[Sock] = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request("127.0.0.1", token))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write(masked_text_frame(b'{"type":"subscribe","topic":"lobby"}'))
        sockets.append((reader, writer))
    for reader, _writer in sockets:
        await _read_until(reader, b'"type":"snapshot"')
    return sockets


def _reset(sockets: list[Sock]) -> None:
    """Close with RST: the server's next `send` to each fails."""
    for _reader, writer in sockets:
        if not writer.is_closing():
            linger = struct.pack("ii", 1, 0)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        writer.close()


async def _read_until(reader: asyncio.StreamReader, marker: bytes, data: bytes = b"") -> bytes:
    async with asyncio.timeout(10):
        while marker not in data:
            chunk = await reader.read(65536)
            assert chunk, "connection closed"
            data += chunk
    return data


async def _expect_events_in_order(sockets: list[Sock], problems: list[str]) -> None:
    """Each socket gets the `session.created` events of `problems`, each once, in that order."""

    async def one(reader: asyncio.StreamReader) -> None:
        data, events = b"", []
        async with asyncio.timeout(10):
            while len(events) < len(problems):
                chunk = await reader.read(65536)
                assert chunk, "connection closed"
                data += chunk
                events = [orjson.loads(p) for op, p in server_frames(data) if op == 0x1 and b'"session.created"' in p]
        assert [e["session"]["problem"] for e in events] == problems
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs

    await asyncio.gather(*(one(reader) for reader, _writer in sockets))


async def _create(http: aiohttp.ClientSession, url: str, headers: dict[str, str], problem: str) -> None:
    body = {"problem": problem, "difficulty": "easy"}
    async with http.post(f"{url}/api/sessions", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()


async def test_asyncio_loop_fan_out_with_sockets_dying_and_closing_in_it(settings, factory: Factory, mongo, redis):
    app_client = await serve(create_app(settings.model_copy(update={"quotas_enabled": False})))
    host, victim = await factory.user("host"), await factory.user("victim")
    sockets: list[Sock] = []
    doomed: list[Sock] = []
    stuck = None
    try:
        sockets = await _subscribe_all(app_client.port or 0, host.token, SUBSCRIBERS)
        doomed = await _subscribe_all(app_client.port or 0, victim.token, 3)
        stuck = await StuckClient.connect(app_client, host.token)
        stuck.send({"type": "subscribe", "topic": "lobby"})
        await asyncio.sleep(0.2)
        dying = sockets[5::30]
        _reset(dying)
        living = [s for s in sockets if s not in dying]

        hub, bus = app_client.app[HUB], Bus(app_client.app[REDIS], app_client.app[SETTINGS])
        big = "x" * 20_000  # fills the stalled client's buffers within a few events
        problems = [f"p{i}" for i in range(EVENTS)]
        for i, problem in enumerate(problems):
            body = event_body("session.created", {"_id": f"{i:024x}", "problem": problem, "status": "active", "x": big})
            if i == 1:
                # The server closes these in the same loop iteration as the dispatch: their close frame
                # is not written yet when the event is handed out, and the event must not follow it.
                epoch, seq = await bus.meta("lobby")
                hub.close_user(victim.doc["clerkId"], 4001, "user deleted")
                await hub.on_event(BusEvent(epoch, "lobby", seq + 1, body))
            await bus.publish("lobby", body)  # for i == 1 the same seq again: a duplicate where it arrived
        await _expect_events_in_order(living, problems)

        for reader, _writer in doomed:
            frames = server_frames(await _read_to_close(reader))
            closes = [i for i, (op, _p) in enumerate(frames) if op == 0x8]
            assert closes and closes[0] == len(frames) - 1, f"frames after the close frame: {frames[-3:]}"
            assert frames[closes[0]][1][:2] == (4001).to_bytes(2, "big")
            assert not any(b'"p1"' in p or b'"p2"' in p for _op, p in frames)
    finally:
        _reset(sockets + doomed)
        if stuck is not None:
            stuck.close()
        await app_client.close()


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


@asynccontextmanager
async def _uvloop_server(settings, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    port = embedded.free_port()
    env = {**settings_env(settings), "PORT": str(port), "WEB_LOOP": "uvloop", "QUOTAS_ENABLED": "false"}
    with (tmp_path / "web.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on from the loop
            [sys.executable, str(ROOT / "run_web.py")], env=env, stdout=log, stderr=log
        )
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, proc, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)


async def test_uvloop_fan_out_with_sockets_dying_in_it(settings, factory: Factory, mongo, tmp_path):
    host = await factory.user("host")
    async with _uvloop_server(settings, tmp_path) as url, aiohttp.ClientSession() as http:
        port = int(url.rsplit(":", 1)[1])
        sockets = await _subscribe_all(port, host.token, SUBSCRIBERS)
        try:
            dying = sockets[::25]
            _reset(dying)
            living = [s for s in sockets if s not in dying]
            problems = [f"p{i}" for i in range(EVENTS)]
            for problem in problems:
                await _create(http, url, host.headers, problem)
            await _expect_events_in_order(living, problems)
            # The server is still whole: a new subscriber gets its snapshot and the next event.
            sockets += await _subscribe_all(port, host.token, 1)
            late = sockets[-1]
            await _create(http, url, host.headers, "after")
            await _expect_events_in_order([late, *living[:10]], ["after"])
        finally:
            _reset(sockets)
