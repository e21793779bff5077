"""The middlewares: request id, metrics and the request log; errors → `{"message": …, "code": …}` JSON
(the only place, with hireflow/web/runner.py for what aiohttp answers before any middleware); CORS."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pymongo.errors import AutoReconnect, PyMongoError, ServerSelectionTimeoutError
from redis.exceptions import RedisError

from hireflow.errors import HireFlowError
from hireflow.observability import REQUEST_ID, Metrics, request_id_from
from hireflow.web.access_log import AccessLog
from hireflow.web.appkeys import USER_ID
from hireflow.web.jsonio import error_response
from hireflow.web.origins import OriginPolicy

log = logging.getLogger(__name__)

# aiohttp's own HTTP exceptions (no route, wrong method, body over client_max_size…) as (message, code).
_HTTP_ERRORS = {
    400: ("Bad request", "bad_request"),
    404: ("Route not found", "route_not_found"),
    405: ("Method not allowed", "method_not_allowed"),
    413: ("Request body too large", "payload_too_large"),
    415: ("Content-Type must be application/json", "unsupported_media_type"),
}

# A 503 for a failed dependency tells clients when to try again: a Redis failover through Sentinel or
# a MongoDB election takes a few seconds (README, "Running at scale").
RETRY_AFTER_S = 2
# Reads that met a MongoDB primary change (NotWritablePrimary, a dropped connection) are run once more:
# PyMongo's retryable reads and writes already retried once, against whatever primary it found then.
_RETRIED_METHODS = frozenset({"GET", "HEAD"})


def observe(metrics: Metrics, access: AccessLog) -> web.middleware:  # type: ignore[valid-type]
    """Outermost: give the request its id, then count, time and log it (one line, no secrets)."""
    observed: dict[tuple[str, str, int], tuple[Any, Any]] = {}
    """The metric series of each (method, route, status), looked up once (bounded: route templates)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers["X-Request-ID"] = request_id
            return response
        finally:
            duration_s = time.perf_counter() - started
            route = _route(request)
            series = observed.get((request.method, route, status))
            if series is None:
                series = observed[(request.method, route, status)] = (
                    metrics.http_requests.labels(request.method, route, str(status)),
                    metrics.http_latency.labels(request.method, route),
                )
            series[0].inc()
            series[1].observe(duration_s)
            access.line(request.method, route, status, duration_s, request.get(USER_ID), request_id)
            REQUEST_ID.reset(token)

    return middleware


def _route(request: web.Request) -> str:
    """The matched route's template (`/api/sessions/{id}`), so metrics stay bounded whatever the paths."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def errors(metrics: Metrics) -> web.middleware:  # type: ignore[valid-type]
    """Turn every failure into JSON. Domain errors keep their status; a dependency failure is 503."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            try:
                return await handler(request)
            except AutoReconnect as exc:
                if not _retriable(request, exc):
                    raise
                log.info("%s %s: retrying once after %r", request.method, request.path, exc)
                return await handler(request)
        except HireFlowError as exc:
            response = error_response(exc.status, exc.message, exc.code)
            response.headers.update(exc.headers)
            if exc.status == 503:
                response.headers.setdefault("Retry-After", str(RETRY_AFTER_S))
            return response
        except web.RequestPayloadError as exc:  # e.g. a body that is not in its Content-Encoding
            log.info("%s %s: unreadable body: %s", request.method, request.path, exc)
            response = error_response(400, "Request body could not be decoded", "bad_request")
            # The rest of the body cannot be parsed either: close the connection after this answer
            # (and mark the body read, or aiohttp re-raises the same error while draining it).
            response.force_close()
            request.content.feed_eof()
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message, code = _HTTP_ERRORS.get(exc.status) or (exc.reason, f"http_{exc.status}")
            response = error_response(exc.status, message, code)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except (PyMongoError, RedisError, OSError) as exc:
            dependency = (
                "mongodb" if isinstance(exc, PyMongoError) else "redis" if isinstance(exc, RedisError) else "os"
            )
            metrics.dependency_errors.labels(dependency).inc()
            log.warning("%s %s: dependency failed: %r", request.method, request.path, exc)
            response = error_response(503, "Service unavailable", "service_unavailable")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        except Exception:
            log.exception("%s %s: unexpected error", request.method, request.path)
            return error_response(500, "Internal Server Error", "internal_error")

    return middleware


def _retriable(request: web.Request, exc: AutoReconnect) -> bool:
    """Idempotent, not a WebSocket (whose handler may have answered already), and not a server
    selection that already waited its whole timeout."""
    return (
        request.method in _RETRIED_METHODS
        and request.headers.get("Upgrade", "").lower() != "websocket"
        and not isinstance(exc, ServerSelectionTimeoutError)
    )


def cors(origins: OriginPolicy) -> web.middleware:  # type: ignore[valid-type]
    """Reflect an allowed Origin with credentials, like Express's `cors({origin, credentials: true})`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        ok = origin is not None and origins.allows(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            if ok:
                response.headers["Access-Control-Allow-Methods"] = "GET,HEAD,PUT,PATCH,POST,DELETE"
                requested = request.headers.get("Access-Control-Request-Headers")
                if requested:
                    response.headers["Access-Control-Allow-Headers"] = requested
                response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if ok and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers.add("Vary", "Origin")
        return response

    return middleware
