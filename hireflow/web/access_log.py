"""The request log: one line per request, written by `observe` (web/middleware.py).

Every request pays for this line, so where nothing but the process's own JSON log stream listens
(production and test logging, `configure_logging`), the line is built with orjson and written to that
stream directly, all the lines of one event-loop iteration in one write: no `LogRecord`, no formatter,
no write per request. The line is the one `JsonFormatter` would print for the same record. Whenever
anything else listens to the `hireflow.access` logger (development's readable lines, a test's
`caplog`, a handler an operator added), the line goes through `logging` as usual.

A process killed with SIGKILL loses at most the lines of its last loop iteration.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from hireflow import observability

logger = logging.getLogger("hireflow.access")


class AccessLog:
    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._second = -1
        self._stamp = ""

    def line(
        self, method: str, route: str, status: int, duration_s: float, user_id: str | None, request_id: str
    ) -> None:
        duration_ms = duration_s * 1000
        message = f"{method} {route} {status} {duration_ms:.1f}ms"
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 2),
            "user_id": user_id,
            "request_id": request_id,
        }
        stream = observability.direct_json_stream(logger)
        if stream is None:
            if logger.isEnabledFor(logging.INFO):
                logger.info("%s", message, extra=fields)
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        record = {
            "time": f"{self._stamp}.{int((now - second) * 1000):03d}Z",
            "level": "info",
            "logger": "hireflow.access",
            "message": message,
            **fields,
        }
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush, stream)
        self._pending.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def _flush(self, stream: observability.LogStream) -> None:
        lines, self._pending = self._pending, []
        stream.write_lines(lines)

    def flush(self) -> None:
        """Write what is pending now (shutdown)."""
        stream = observability.direct_json_stream(logger)
        if self._pending and stream is not None:
            self._flush(stream)
