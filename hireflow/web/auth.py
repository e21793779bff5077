"""Who is calling: the Clerk session token from `Authorization: Bearer` or the `__session` cookie."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from hireflow.cache import Versions
from hireflow.clerk.tokens import Claims
from hireflow.errors import Unauthorized
from hireflow.store.mongo import Document
from hireflow.web.appkeys import TOKENS, USER_ID, USERS, VERSIONS


@dataclass(frozen=True)
class Caller:
    user: Document
    claims: Claims
    versions: Versions
    """Cache versions read once for this request (see hireflow/cache.py)."""


def token_from(headers: web.BaseRequest | web.Request) -> str | None:
    header = headers.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = headers.cookies.get("__session")
    return cookie or None


async def authenticate(request: web.Request) -> Caller:
    """The verified caller, or 401 `Unauthorized - invalid token` with a code saying why (errors.AuthFailure)."""
    token = token_from(request)
    if token is None:
        raise Unauthorized("token_missing")
    return await caller_for(request, token)


async def caller_for(request: web.Request, token: str) -> Caller:
    """Verify a token (from a header, a cookie or a WebSocket frame) and find its user."""
    claims = await request.app[TOKENS].verify(token)
    request[USER_ID] = claims.user_id
    return await _caller(request.app, claims)


async def socket_caller(app: web.Application, token: str) -> Caller:
    """`caller_for` on a WebSocket whose request has ended (a token refreshed by an `auth` frame)."""
    return await _caller(app, await app[TOKENS].verify(token))


async def _caller(app: web.Application, claims: Claims) -> Caller:
    versions = await app[VERSIONS].read()
    user = await app[USERS].current(claims.user_id, versions)
    return Caller(user=user, claims=claims, versions=versions)
