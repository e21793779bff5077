"""Liveness, readiness, and the seed's demo `books` endpoint."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hireflow.web.appkeys import DB, HUB, REDIS
from hireflow.web.jsonio import error_response, json_response

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

READY_TIMEOUT_S = 2.0


@routes.get("/health")
@routes.get("/api/health")
async def health(_request: web.Request) -> web.Response:
    return json_response({"msg": "api is up and running"})


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    """200 when MongoDB and Redis answer and the realtime bus is subscribed; 503 naming what is not."""
    checks = {"mongodb": request.app[DB].command("ping"), "redis": request.app[REDIS].ping()}
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(check, READY_TIMEOUT_S) for check in checks.values()), return_exceptions=True
    )
    failing = [name for name, result in zip(names, results, strict=True) if isinstance(result, BaseException)]
    if not request.app[HUB].listener.connected:
        failing.append("realtime")
    if failing:
        log.warning("not ready: %s", ", ".join(failing))
        return error_response(503, f"Service unavailable: {', '.join(failing)}", "not_ready")
    return json_response({"status": "ok", "mongodb": "ok", "redis": "ok", "realtime": "ok"})


@routes.get("/books")
@routes.get("/api/books")
async def books(_request: web.Request) -> web.Response:
    return json_response({"msg": "this is the books endpoint"})
