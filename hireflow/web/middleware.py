"""The middlewares: request id, metrics and the request log; errors → `{"message": …}` JSON (the only
place); and CORS for CLIENT_URL."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from hireflow.errors import HireFlowError, TooManyRequests
from hireflow.observability import REQUEST_ID, Metrics, request_id_from
from hireflow.web.appkeys import USER_ID
from hireflow.web.jsonio import error_response

log = logging.getLogger(__name__)
access_log = logging.getLogger("hireflow.access")

_HTTP_MESSAGES = {
    400: "Bad request",
    404: "Route not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def observe(metrics: Metrics) -> web.middleware:  # type: ignore[valid-type]
    """Outermost: give the request its id, then count, time and log it (one line, no secrets)."""

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
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            metrics.http_latency.labels(request.method, route).observe(duration_s)
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                route,
                status,
                duration_s * 1000,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_s * 1000, 2),
                    "user_id": request.get(USER_ID),
                    "request_id": request_id,
                },
            )
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
            return await handler(request)
        except HireFlowError as exc:
            response = error_response(exc.status, exc.message, exc.code)
            if isinstance(exc, TooManyRequests):
                response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except (PyMongoError, RedisError, OSError) as exc:
            dependency = (
                "mongodb" if isinstance(exc, PyMongoError) else "redis" if isinstance(exc, RedisError) else "os"
            )
            metrics.dependency_errors.labels(dependency).inc()
            log.warning("%s %s: dependency failed: %r", request.method, request.path, exc)
            return error_response(503, "Service unavailable", "service_unavailable")
        except Exception:
            log.exception("%s %s: unexpected error", request.method, request.path)
            return error_response(500, "Internal Server Error", "internal_error")

    return middleware


def cors(allowed_origins: Iterable[str]) -> web.middleware:  # type: ignore[valid-type]
    """Reflect an allowed Origin with credentials, as the seed's `cors({origin, credentials: true})`."""
    allowed = frozenset(allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        ok = origin is not None and origin in allowed
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
