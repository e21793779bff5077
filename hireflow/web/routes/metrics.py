"""`GET /metrics` on the main port: public in development and test; in production only with
`Authorization: Bearer <METRICS_TOKEN>`, and not served at all without that token (serve the metrics
on `METRICS_PORT` instead, a port the load balancer does not expose)."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from hireflow.observability import metrics_response
from hireflow.settings import Settings
from hireflow.web.appkeys import METRICS
from hireflow.web.jsonio import error_response

log = logging.getLogger(__name__)


def routes(settings: Settings) -> list[web.RouteDef]:
    if not settings.metrics_enabled or settings.metrics_port is not None:
        return []
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if settings.node_env == "production" and not token:
        log.warning("/metrics not served: in production set METRICS_PORT or METRICS_TOKEN")
        return []
    expected = f"Bearer {token}".encode() if settings.node_env == "production" else None

    async def metrics(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if expected is not None and not secrets.compare_digest(given, expected):
            return error_response(401, "Unauthorized", "unauthorized")
        return metrics_response(request.app[METRICS])

    return [web.get("/metrics", metrics)]
