"""`WEB_CONCURRENCY`: several web processes on one port, each a full instance, stopped together."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
import psutil

from hireflow import embedded
from hireflow.web.serve import loop_factory
from tests.conftest import ORIGIN, Factory
from tests.support.workers import ROOT, eventually, settings_env

SOCKETS = 24


async def test_two_processes_share_the_port_and_both_get_lobby_events(settings, factory: Factory, mongo, tmp_path):
    port = embedded.free_port()
    env = {**settings_env(settings), "PORT": str(port), "WEB_CONCURRENCY": "2"}
    with (tmp_path / "web.log").open("wb") as log:
        parent = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on from the loop
            [sys.executable, str(ROOT / "run_web.py")], env=env, stdout=log, stderr=log
        )
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, parent, timeout_s=60)
        children = psutil.Process(parent.pid).children()
        assert len(children) == 2

        async def both_listening() -> bool:  # the port answers once the first one listens
            return all(_listens(child, port) for child in children)

        await eventually(both_listening, timeout_s=30)
        host = await factory.user("host")
        headers = {"Authorization": f"Bearer {host.token}"}
        async with aiohttp.ClientSession() as http:
            sockets = []
            for _ in range(SOCKETS):
                ws = await http.ws_connect(f"http://127.0.0.1:{port}/api/ws", headers=headers, origin=ORIGIN)
                await ws.send_json({"type": "subscribe", "topic": "lobby"})
                sockets.append(ws)
            for ws in sockets:
                assert (await ws.receive_json(timeout=10))["type"] == "ready"
                assert (await ws.receive_json(timeout=10))["type"] == "snapshot"

            served = [
                sum(1 for c in child.net_connections("tcp") if c.laddr.port == port and c.status == "ESTABLISHED")
                for child in children
            ]
            assert all(n > 0 for n in served), f"the kernel gave every socket to one process: {served}"

            body = {"problem": "Two Sum", "difficulty": "easy"}
            async with http.post(f"http://127.0.0.1:{port}/api/sessions", json=body, headers=headers) as resp:
                assert resp.status == 201
            for ws in sockets:
                event = await ws.receive_json(timeout=10)
                assert (event["type"], event["event"]) == ("event", "session.created")

            parent.send_signal(signal.SIGTERM)
            await asyncio.gather(*(ws.receive(timeout=15) for ws in sockets))  # each answers its close frame
            codes = {ws.close_code for ws in sockets}
            assert codes == {1001}, "every socket is closed with 1001, whichever process held it"
        assert await asyncio.to_thread(parent.wait, 20) == 0
        await eventually(lambda: _gone(children), timeout_s=10)
    finally:
        if parent.poll() is None:
            for child in psutil.Process(parent.pid).children():  # not left behind when the test fails
                child.kill()
            parent.kill()
            parent.wait()


def _listens(process: psutil.Process, port: int) -> bool:
    return any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in process.net_connections("tcp"))


async def _gone(children: list[psutil.Process]) -> bool:
    return not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)


def test_the_web_loop_is_uvloop_unless_asked_otherwise(settings) -> None:
    import uvloop

    assert loop_factory(settings.model_copy(update={"web_loop": "auto"})) is uvloop.new_event_loop
    assert loop_factory(settings.model_copy(update={"web_loop": "uvloop"})) is uvloop.new_event_loop
    assert loop_factory(settings.model_copy(update={"web_loop": "asyncio"})) is None
