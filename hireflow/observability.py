"""Metrics (Prometheus) and structured logs, for the web process and the workers.

One `Metrics` object per process, each with its own registry (nothing global, so tests can build many
apps). Logs: one line per request and per job run, JSON in production and test, readable in
development. A request id (the client's `X-Request-ID`, or a new one) follows the request into the
jobs it enqueues, through a context variable; secrets and tokens are never put in a log line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def request_id_from(header: str | None) -> str:
    """The client's request id when it is a sane token, else a fresh one."""
    if header and _VALID_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


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


def configure_logging(node_env: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if node_env == "development":
        handler.setFormatter(DevFormatter())
    else:
        handler.setFormatter(JsonFormatter())
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
