"""Start the HTTP + WebSocket server: `python run_web.py`."""

from __future__ import annotations

from aiohttp import web

from hireflow import startup
from hireflow.web.app import create_app


def main() -> None:
    settings = startup.load()
    web.run_app(
        create_app(settings),
        host=settings.listen_host,
        port=settings.port,
        access_log=None,  # hireflow.access logs one line per request (web/middleware.py)
        shutdown_timeout=10,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
