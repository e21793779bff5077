"""The reference of `bench/rest.py`: raw aiohttp answering every GET with one prebuilt body.

`python bench/raw_aiohttp.py PORT BODY_FILE PROCESSES`: that many processes on one port
(SO_REUSEPORT), on uvloop when it is installed, like `run_web.py`: no middleware, no auth, no
database, no log; what aiohttp itself costs per request on this machine today.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
from pathlib import Path

from aiohttp import web


def serve(port: int, body: bytes) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=2048).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


if __name__ == "__main__":
    port, body, processes = int(sys.argv[1]), Path(sys.argv[2]).read_bytes(), int(sys.argv[3])
    children = [multiprocessing.Process(target=serve, args=(port, body)) for _ in range(processes)]
    for child in children:
        child.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for child in children:
        child.terminate()
    for child in children:
        child.join()
