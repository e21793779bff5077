"""Serving the app: one process, or `WEB_CONCURRENCY` processes sharing the port (SO_REUSEPORT).

Each process is a full instance (its own MongoDB and Redis clients, bus listener and hub); nothing is
shared between them but the port, so they behave exactly like instances on different hosts. The
kernel spreads new connections across them. The parent only supervises: SIGTERM or SIGINT is passed
on to every child, which stops accepting and closes its WebSockets with 1001 (`_close_websockets`);
a child that dies on its own is replaced (at most `RESPAWNS` times a minute, after which the parent
stops them all and exits non-zero, for its own supervisor to act on).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from aiohttp import web

from hireflow.settings import Settings
from hireflow.web.app import create_app, server_options
from hireflow.web.runner import Runner

log = logging.getLogger(__name__)

RESPAWNS, RESPAWN_WINDOW_S = 5, 60.0
GC_THRESHOLDS = (700, 10, 100)
"""The collector's thresholds in a serving process: Python's defaults, except that a full collection
waits for 100 collections of the middle generation instead of 10. A full collection walks every object
that requests allocated and still hold (70,000-130,000 at 500 open pads: 40-90 ms of CPU, during which
the loop serves nobody); under the pad benchmark's load it ran about every 10 s per process at the
default, and now about every 100 s. Only cyclic garbage waits longer: everything else is freed when
its last reference goes, as before."""
STOP_TIMEOUT_S = 15.0


def serve(settings: Settings) -> int:
    count = settings.web_processes
    if count == 1:
        _run(settings, reuse_port=False)
        return 0
    return _supervise(settings, count)


def _run(settings: Settings, *, reuse_port: bool) -> None:
    """One instance until SIGINT/SIGTERM, then a clean stop: what `web.run_app` does, with our `Runner`
    (hireflow/web/runner.py: JSON answers for the requests aiohttp refuses itself), which `run_app`
    cannot be given."""
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        runner.run(_serve(create_app(settings), settings, reuse_port=reuse_port))


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when asked for or (`auto`) installed: its transports are C, so a write to an idle socket
    is one `send` with little Python around it, and each connection costs less memory. None: asyncio's."""
    if settings.web_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if settings.web_loop == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


async def _serve(app: web.Application, settings: Settings, *, reuse_port: bool) -> None:
    # The signal only ends the wait: the runner's cleanup then runs while every connection's handler is
    # still alive, so WebSockets get their 1001 close (cancelling everything at once would cut them).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # hireflow.access logs one line per request (web/middleware.py), so aiohttp's access log is off.
    runner = Runner(app, access_log=None, shutdown_timeout=10, **server_options(settings))
    await runner.setup()
    # Everything start-up allocated lives as long as the process: out of the collector's way, so its
    # full collections (pauses on the request path) walk only what requests allocate.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        host, port = settings.listen_host, settings.port
        await web.TCPSite(runner, host, port, backlog=2048, reuse_port=reuse_port).start()
        if not reuse_port:  # one "Running on" line, not one per process
            print(f"======== Running on http://{host}:{port} ========\n(Press CTRL+C to quit)", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _child(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into one SIGTERM per child
    _run(settings, reuse_port=True)


def _supervise(settings: Settings, count: int) -> int:
    # fork: the children inherit the imported modules and the configured logging; no event loop or
    # connection exists yet in this process, so nothing is shared by accident.
    context = multiprocessing.get_context("fork")
    children: list[BaseProcess] = []
    stopping = False

    def start() -> BaseProcess:
        child = context.Process(target=_child, args=(settings,), daemon=False)
        child.start()
        return child

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = [start() for _ in range(count)]
    log.info("serving on port %s with %d processes: %s", settings.port, count, [c.pid for c in children])
    respawns: list[float] = []
    failed = False
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            if child.is_alive() or stopping:
                continue
            now = time.monotonic()
            respawns = [t for t in respawns if now - t < RESPAWN_WINDOW_S]
            if len(respawns) >= RESPAWNS:
                log.error("web process %s exited with %s; too many restarts, stopping", child.pid, child.exitcode)
                stopping = failed = True
                break
            log.warning("web process %s exited with %s; starting another", child.pid, child.exitcode)
            children[i] = start()
            respawns.append(now)
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
    return 1 if failed else 0
