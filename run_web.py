"""Start the HTTP + WebSocket server: `python run_web.py`."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from hireflow.settings import Settings
from hireflow.web.app import create_app


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = settings.missing_for_production()
    if missing:
        print(f"missing required environment variables: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    web.run_app(
        create_app(settings),
        host=settings.listen_host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.node_env == "development" else None,
        shutdown_timeout=10,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
