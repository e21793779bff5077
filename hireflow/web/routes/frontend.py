"""The built frontend (`FRONTEND_DIST`) in production: files, SPA fallback, cache headers, nothing else.

Paths under `/api` are never answered here. A path that resolves outside the dist directory (`..`,
encoded or not, or a symlink) is 404; a directory is never listed; anything not found is the SPA's
`index.html`. Vite puts content-hashed files under `assets/`: those are cached for a year.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hireflow.web.jsonio import error_response

HASHED_ASSETS = "assets/"
IMMUTABLE = "public, max-age=31536000, immutable"


def routes(dist: Path) -> list[web.RouteDef]:
    root = dist.resolve()
    index = root / "index.html"

    async def serve(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if request.method not in ("GET", "HEAD") or request.path == "/api" or request.path.startswith("/api/"):
            return error_response(404, "Route not found", "route_not_found")
        try:
            target = (root / tail).resolve()
            if not target.is_relative_to(root):
                return error_response(404, "Not found", "not_found")
            is_file = target.is_file()
        except (ValueError, OSError):  # a NUL byte, a name too long: no such file
            return error_response(404, "Not found", "not_found")
        if is_file:
            cache = IMMUTABLE if target.relative_to(root).as_posix().startswith(HASHED_ASSETS) else "no-cache"
            return web.FileResponse(target, headers={"Cache-Control": cache})
        if index.is_file():
            return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
        return error_response(404, "Not found", "not_found")

    return [web.route("*", "/{tail:.*}", serve)]
