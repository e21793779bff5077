"""Start the HTTP + WebSocket server: `python run_web.py` (`WEB_CONCURRENCY` processes on one port)."""

from __future__ import annotations

from hireflow import startup
from hireflow.web.serve import serve


def main() -> None:
    raise SystemExit(serve(startup.load()))


if __name__ == "__main__":
    main()
