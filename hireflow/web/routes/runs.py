"""Code runs: `/api/sessions/{id}/runs` (queue one, list the latest) and `/api/runtimes`."""

from __future__ import annotations

from aiohttp import web

from hireflow.models import MAX_CODE_BYTES, MAX_STDIN_BYTES
from hireflow.web.appkeys import RUNS, RUNTIMES
from hireflow.web.auth import authenticate
from hireflow.web.jsonio import json_response, read_json

routes = web.RouteTableDef()

# Room for 64 KiB of code and 16 KiB of stdin however JSON escapes them (up to 6 bytes a byte);
# the service checks the decoded sizes.
MAX_RUN_BODY_BYTES = 6 * (MAX_CODE_BYTES + MAX_STDIN_BYTES) + 4096


@routes.post("/api/sessions/{id}/runs")
async def create_run(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await read_json(request.clone(client_max_size=MAX_RUN_BODY_BYTES), MAX_RUN_BODY_BYTES)
    run = await request.app[RUNS].create(request.match_info["id"], caller.user, caller.versions, body)
    return json_response({"run": run}, status=202)


@routes.get("/api/sessions/{id}/runs")
async def list_runs(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    runs = await request.app[RUNS].recent(request.match_info["id"], caller.user, caller.versions)
    return json_response({"runs": runs})


@routes.get("/api/runtimes")
async def runtimes(request: web.Request) -> web.Response:
    await authenticate(request)
    catalog = request.app[RUNTIMES]
    found = await catalog.list() if catalog is not None else []
    return json_response([runtime.json() for runtime in found])
