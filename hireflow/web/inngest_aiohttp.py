"""A thin aiohttp adapter for the Inngest SDK, modelled on its FastAPI one.

The SDK ships adapters for Flask, FastAPI, Tornado and Django; this one maps an aiohttp request onto
the SDK's framework-neutral `CommHandler` (which verifies signatures outside dev mode and runs the
functions) and its `CommResponse` back onto an aiohttp response. It reports itself as `aiohttp`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import inngest
from aiohttp import web
from inngest._internal import comm_lib, server_lib, transforms

SERVE_PATH = "/api/inngest"


@dataclass(frozen=True)
class _Framework:
    """Stands in for `server_lib.Framework`, whose enum has no aiohttp member; only `.value` is read."""

    value: str = "aiohttp"
    name: str = "AIOHTTP"


FRAMEWORK = cast(server_lib.Framework, _Framework())


def routes(client: inngest.Inngest, functions: list[inngest.Function[Any]]) -> list[web.RouteDef]:
    # Unsigned sync (PUT) requests are refused outside dev mode like every other unsigned request.
    handler = comm_lib.CommHandler(
        client=client, framework=FRAMEWORK, functions=functions, enable_unauthed_sync=False, streaming=None
    )

    async def comm_request(request: web.Request) -> comm_lib.CommRequest:
        return comm_lib.CommRequest(
            body=await request.read(),
            headers={k.lower(): v for k, v in request.headers.items()},
            public_path=None,
            query_params=dict(request.query.items()),
            raw_request=request,
            request_url=str(request.url),
            serve_origin=None,
            serve_path=SERVE_PATH,
        )

    async def get(request: web.Request) -> web.Response:
        return _response(client, handler.get_sync(await comm_request(request)))

    async def post(request: web.Request) -> web.Response:
        return _response(client, await handler.post(await comm_request(request)))

    async def put(request: web.Request) -> web.Response:
        return _response(client, await handler.put(await comm_request(request)))

    return [web.get(SERVE_PATH, get), web.post(SERVE_PATH, post), web.put(SERVE_PATH, put)]


def _response(client: inngest.Inngest, comm_res: comm_lib.CommResponse) -> web.Response:
    body = transforms.dump_json(comm_res.body)
    if isinstance(body, Exception):
        comm_res = comm_lib.CommResponse.from_error(client.logger, body)
        body = json.dumps(comm_res.body)
    return web.Response(body=body.encode(), status=comm_res.status_code, headers=comm_res.headers)
