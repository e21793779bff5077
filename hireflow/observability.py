"""Metrics (Prometheus) and structured logs, for the web process and the workers.

One `Metrics` object per process, each with its own registry (nothing global, so tests can build many
apps). Logs: one line per request and per job run, JSON in production and test, readable in
development. A request id (the client's `X-Request-ID`, or a new one) follows the request into the
jobs it enqueues, through a context variable; secrets and tokens are never put in a log line.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RequestIds:
    """Fresh request ids: a random per-process prefix (drawn again in a forked child) and a counter,
    unique like a uuid4 but without reading the system's random source on every request."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()


def request_id_from(header: str | None) -> str:
    """The client's request id when it is a sane token, else a fresh one (32 hex characters)."""
    if header and _VALID_REQUEST_ID.match(header):
        return header
    return _request_ids.new()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "hireflow_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "hireflow_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.jobs = Counter(
            "hireflow_jobs",
            "Jobs by name and outcome (enqueued, enqueue_failed, succeeded, retried, failed)",
            ["job", "outcome"],
            registry=r,
        )
        self.dependency_errors = Counter(
            "hireflow_dependency_errors", "MongoDB and Redis errors seen by requests", ["dependency"], registry=r
        )
        self.deferred_writes = Counter(
            "hireflow_deferred_redis_writes",
            "Cache version bumps and event publishes that failed after their change was stored (retried)",
            ["operation"],
            registry=r,
        )

        self.quota_unavailable = Counter(
            "hireflow_quota_unavailable",
            "Quota checks let through because Redis could not be reached (quotas fail open)",
            ["quota"],
            registry=r,
        )
        self.quota_rejections = Counter(
            "hireflow_quota_rejections", "Requests and frames refused by a per-user quota", ["quota"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HubCollector(Collector):
    """Reads the realtime hub's counters at scrape time (the hub keeps plain integers on its hot path)."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._hub.stats
        yield GaugeMetricFamily(
            "hireflow_ws_connections", "Open WebSocket connections", value=self._hub.connection_count
        )
        yield CounterMetricFamily(
            "hireflow_events_published", "Events received from the bus", value=stats.events_received
        )
        yield CounterMetricFamily(
            "hireflow_events_serialized", "Events serialized for subscribers", value=stats.events_serialized
        )
        yield CounterMetricFamily(
            "hireflow_events_delivered", "Event deliveries to subscribers", value=stats.events_delivered
        )
        overflows = CounterMetricFamily(
            "hireflow_ws_queue_overflows", "Outbound queues that overflowed", labels=["outcome"]
        )
        overflows.add_metric(["reset"], stats.resets_slow)
        overflows.add_metric(["closed"], stats.closed_slow)
        yield overflows


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id, and any `extra` fields."""

    STANDARD = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self.STANDARD and key not in line:
                line[key] = value
        if line.get("request_id") is None:
            # Formatted as it is emitted, so this is the id of the request or job that logged it.
            line["request_id"] = REQUEST_ID.get()
        if line["request_id"] is None:
            del line["request_id"]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class DevFormatter(logging.Formatter):
    """A readable line for a terminal, ending with the request id and user id when there are any
    (`… GET /api/sessions/active 200 3.1ms  rid=… user=user_dev_alice`), as the JSON lines carry."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        user_id = getattr(record, "user_id", None)
        tail = (f"rid={request_id}" if request_id else "") + (f" user={user_id}" if user_id else "")
        if not tail:
            return line
        head, newline, rest = line.partition("\n")  # after the message, before any traceback
        return f"{head}  {tail.strip()}{newline}{rest}"


class LogStream:
    """Writes already formatted lines to a JSON handler's stream, under that handler's lock."""

    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self._handler = handler

    def write_lines(self, lines: list[bytes]) -> None:
        stream = self._handler.stream
        with self._handler.lock or contextlib.nullcontext():
            try:
                raw = getattr(stream, "buffer", None)
                if raw is not None:
                    stream.flush()  # whatever the text layer holds goes first
                    raw.write(b"".join(lines))
                    raw.flush()
                else:
                    stream.write(b"".join(lines).decode())
                    stream.flush()
            except (OSError, ValueError):  # a closed or broken stream: logging itself would not raise either
                pass


class JsonStreamHandler(logging.StreamHandler[TextIO]):
    """The JSON log handler `configure_logging` installs; the request log may write to it directly."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.lines = LogStream(self)


def direct_json_stream(logger: logging.Logger) -> LogStream | None:
    """The stream a hot-path logger may write preformatted JSON lines to: only when the line would
    reach nothing but the JSON handler of `configure_logging` (else None: log through `logging`)."""
    if not logger.isEnabledFor(logging.INFO):
        return None
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or not isinstance(handlers[0], JsonStreamHandler):
        return None
    return handlers[0].lines


def configure_logging(node_env: str) -> None:
    handler: logging.Handler
    if node_env == "development":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(DevFormatter())
    else:
        handler = JsonStreamHandler(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per SDK call would drown the rest


async def serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    """`/metrics` on a port of its own (an aiohttp runner; `await runner.cleanup()` stops it)."""

    async def handler(_request: web.Request) -> web.Response:
        return metrics_response(metrics)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def metrics_response(metrics: Metrics) -> web.Response:
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
