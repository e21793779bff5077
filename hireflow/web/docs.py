"""`/api/docs`: the OpenAPI document rendered by Swagger UI, every asset served from this server.

Swagger UI's files come from the installed `swagger-ui-bundle-v2` package (Swagger UI 5, which reads
OpenAPI 3.1), so nothing is fetched from a CDN and nothing of it is committed here. The page expands
every operation with its parameters, request body, responses and schemas; **Authorize** takes a
session token and **Try it out** sends real requests. The page and its initializer are static files
(no inline script), so a strict Content-Security-Policy would not break it.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from hireflow.errors import NotFound

OURS = Path(__file__).resolve().parent / "docs_assets"
SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)
ASSETS = {
    "swagger-ui.css": SWAGGER_UI / "swagger-ui.css",
    "swagger-ui-bundle.js": SWAGGER_UI / "swagger-ui-bundle.js",
    "favicon-32x32.png": SWAGGER_UI / "favicon-32x32.png",
    "init.js": OURS / "init.js",
}
CACHE_S = 3600

routes = web.RouteTableDef()


@routes.get("/api/docs")
async def docs_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(OURS / "index.html", headers={"Cache-Control": "no-cache"})


@routes.get("/api/docs/{file}")
async def docs_asset(request: web.Request) -> web.FileResponse:
    path = ASSETS.get(request.match_info["file"])  # a fixed list: no path is ever built from the URL
    if path is None:
        raise NotFound("Not found")
    return web.FileResponse(path, headers={"Cache-Control": f"public, max-age={CACHE_S}"})
