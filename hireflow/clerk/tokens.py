"""Verify Clerk session tokens with the Clerk SDK's async verifier (it never blocks the event loop).

With `CLERK_JWT_KEY` the check is networkless. Otherwise the key set is fetched from the Backend API
by `jwks.KeySet`, with bounds (at most one fetch per 5 minutes for known keys, per 30 s for an
unknown `kid`), and the SDK verifies with the key found there, networkless too: the SDK's own remote
path would re-fetch the key set for every token with a bad signature. Also ours: only session tokens
are accepted (the SDK would send machine-token prefixes to Clerk for remote verification); and a
token that verified is remembered
until it expires (a browser sends the same short-lived token with every request), so the RSA check
runs once per token rather than once per request. Expiry is still checked on every use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from clerk_backend_api.security.machine import get_token_type
from clerk_backend_api.security.types import (
    TokenType,
    TokenVerificationError,
    TokenVerificationErrorReason,
    VerifyTokenOptions,
)
from clerk_backend_api.security.verifytoken import verify_token_async

from hireflow.clerk.jwks import KeySet
from hireflow.errors import ServiceUnavailable, Unauthorized
from hireflow.settings import Settings

log = logging.getLogger(__name__)

_MAX_REMEMBERED_TOKENS = 20_000
_UPSTREAM_FAILURES = {
    TokenVerificationErrorReason.JWK_FAILED_TO_LOAD,
    TokenVerificationErrorReason.JWK_REMOTE_INVALID,
    TokenVerificationErrorReason.SERVER_ERROR,
    TokenVerificationErrorReason.SECRET_KEY_MISSING,
}


@dataclass(frozen=True)
class Claims:
    """What the rest of the app needs from a verified session token."""

    user_id: str
    expires_at: float


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        secret = settings.clerk_secret_key.get_secret_value() if settings.clerk_secret_key else None
        self._options = VerifyTokenOptions(
            jwt_key=settings.clerk_jwt_key or None,
            secret_key=secret,
            api_url=settings.clerk_api_url.rstrip("/"),
            authorized_parties=settings.authorized_parties,
            clock_skew_in_ms=int(settings.clerk_clock_skew_s * 1000),
        )
        self._timeout_s = settings.clerk_timeout_s
        self._skew_s = settings.clerk_clock_skew_s
        self._keyset = (
            KeySet(
                self._options.api_url,
                secret,
                timeout_s=settings.clerk_timeout_s,
                refresh_s=settings.clerk_jwks_refresh_s,
                unknown_kid_s=settings.clerk_jwks_unknown_kid_s,
            )
            if secret and not self._options.jwt_key
            else None
        )
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    @property
    def configured(self) -> bool:
        return bool(self._options.jwt_key or self._options.secret_key)

    async def verify(self, token: str) -> Claims:
        """The token's claims, or Unauthorized; ServiceUnavailable when Clerk's JWKS cannot be fetched."""
        remembered = self._verified.get(token)
        if remembered is not None:
            if time.time() < remembered.expires_at + self._skew_s:
                return remembered
            del self._verified[token]
            raise Unauthorized("token_expired")
        if not token or get_token_type(token) is not TokenType.SESSION_TOKEN:
            raise Unauthorized()
        options = self._options
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._keyset is not None:
                    kid = self._kid(token)
                    pem = await self._keyset.pem(kid) if kid is not None else None
                    if pem is None:
                        raise Unauthorized()
                    options = dataclasses.replace(options, jwt_key=pem)
                payload = await verify_token_async(token, options)
        except TokenVerificationError as exc:
            if exc.reason in _UPSTREAM_FAILURES:
                log.warning("session token could not be verified: %s", exc.reason.value[0])
                raise ServiceUnavailable() from exc
            expired = exc.reason is TokenVerificationErrorReason.TOKEN_EXPIRED
            raise Unauthorized("token_expired" if expired else "token_invalid") from exc
        except TimeoutError as exc:
            log.warning("Clerk JWKS fetch timed out")
            raise ServiceUnavailable() from exc
        claims = _claims(payload)
        self._verified[token] = claims
        if len(self._verified) > _MAX_REMEMBERED_TOKENS:
            self._verified.popitem(last=False)
        return claims

    def _kid(self, token: str) -> str | None:
        if self._options.jwt_key:
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized() from exc
        return kid if isinstance(kid, str) else None


def _claims(payload: dict[str, Any]) -> Claims:
    user_id = payload.get("sub")
    expires_at = payload.get("exp")
    if not isinstance(user_id, str) or not user_id or not isinstance(expires_at, int | float):
        raise Unauthorized()
    return Claims(user_id=user_id, expires_at=float(expires_at))
