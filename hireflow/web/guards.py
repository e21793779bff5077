"""Requests refused before any handler runs: paths with bytes no route can hold, and cross-site writes.

- A NUL or other control character in the (decoded) path is "Route not found" (404) on every route,
  static serving included: no file name or id can contain one, and the file system would raise on it.
- CSRF. A state-changing request (POST, PUT, PATCH, DELETE) with a body must send it as
  `application/json` (415 otherwise): HTML forms and `fetch` without a preflight can only send
  `text/plain`, form or multipart bodies, so no cross-site page can forge a JSON write. And when the
  caller is authenticated by the `__session` cookie (not a Bearer header, which a page on another
  site cannot attach), a state-changing request whose `Origin` (or, without one, `Referer`) is not
  an allowed origin is refused (403). Exempt: the Clerk webhook and `/api/inngest`, which are signed
  by their senders and are not JSON sent by browsers.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from hireflow.web.jsonio import error_response
from hireflow.web.origins import OriginPolicy

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_EXEMPT = ("/api/webhooks/clerk", "/api/inngest")


def _origin_of(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.rstrip("/")
    referer = request.headers.get("Referer")
    if referer is None:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def _cookie_authenticated(request: web.Request) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return not (scheme.lower() == "bearer" and value.strip()) and "__session" in request.cookies


def guards(origins: OriginPolicy) -> web.middleware:  # type: ignore[valid-type]
    """Both refusals in one middleware (one layer less on every request)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _CONTROL.search(request.path):
            return error_response(404, "Route not found", "not_found")
        if request.method not in STATE_CHANGING or request.path.startswith(CSRF_EXEMPT):
            return await handler(request)
        if request.body_exists and request.content_type != "application/json":
            return error_response(415, "Content-Type must be application/json", "unsupported_media_type")
        if _cookie_authenticated(request):
            origin = _origin_of(request)
            # No Origin and no Referer: not a browser (browsers send Origin on every cross-site write).
            if origin is not None and not origins.allows(origin):
                return error_response(403, "Origin not allowed", "forbidden")
        return await handler(request)

    return middleware
