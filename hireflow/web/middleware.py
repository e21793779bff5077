"""The two middlewares: errors → `{"message": …}` JSON (the only place), and CORS for CLIENT_URL."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from hireflow.errors import HireFlowError
from hireflow.web.jsonio import error_response

log = logging.getLogger(__name__)

_HTTP_MESSAGES = {
    400: "Bad request",
    404: "Route not found",
    405: "Method not allowed",
    413: "Request body too large",
}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into JSON. Domain errors keep their status; a dependency failure is 503."""
    try:
        return await handler(request)
    except HireFlowError as exc:
        return error_response(exc.status, exc.message, exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (PyMongoError, RedisError, OSError) as exc:
        log.warning("%s %s: dependency failed: %r", request.method, request.path, exc)
        return error_response(503, "Service unavailable", "service_unavailable")
    except Exception:
        log.exception("%s %s: unexpected error", request.method, request.path)
        return error_response(500, "Internal Server Error", "internal_error")


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
