"""Clerk's key set (JWKS), fetched by us with bounds, so forged tokens cannot make us hammer Clerk.

The SDK's own remote verification drops its cached key and fetches the key set again whenever a
token with a known `kid` fails its signature check: every forged token costs a fetch, and if Clerk
rate-limits those fetches every user gets 503. Here the keys are cached by `kid` and:

- a known `kid` is served from the cache; the set is re-fetched at most once per `refresh_s`
  (5 minutes), so a key Clerk revoked stops working within that time. A forged token with a known
  `kid` is simply 401: no fetch.
- an unknown `kid` (a real key rotation) triggers a fetch at most once per `unknown_kid_s` (30 s);
  until then tokens with it are 401.
- one fetch at a time (concurrent requests wait for it, then use its result). A failed fetch keeps
  the keys already known; with none known, requests are 503 (as before) until a fetch succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from hireflow.errors import ServiceUnavailable

log = logging.getLogger(__name__)


def _pem(jwk: dict[str, Any]) -> str | None:
    try:
        key = RSAAlgorithm.from_jwk(jwk)
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, RSAPublicKey):
        return None
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class KeySet:
    def __init__(
        self, api_url: str, secret_key: str, *, timeout_s: float, refresh_s: float, unknown_kid_s: float
    ) -> None:
        self._url = api_url.rstrip("/") + "/v1/jwks"
        self._secret_key = secret_key
        self._timeout_s = timeout_s
        self._refresh_s = refresh_s
        self._unknown_kid_s = unknown_kid_s
        self._keys: dict[str, str] = {}
        self._fetched_at = -float("inf")
        self._failed = False
        self._lock = asyncio.Lock()

    async def pem(self, kid: str) -> str | None:
        """The PEM public key of `kid`, or None (the token is then 401)."""
        age_s = time.monotonic() - self._fetched_at
        if kid in self._keys:
            if age_s >= self._refresh_s:
                await self._fetch(self._fetched_at)
            return self._keys.get(kid)
        if age_s >= self._unknown_kid_s:
            await self._fetch(self._fetched_at)
        if not self._keys and self._failed:
            raise ServiceUnavailable()
        return self._keys.get(kid)

    async def _fetch(self, seen: float) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # fetched by another request while this one waited
            try:
                async with httpx.AsyncClient(timeout=self._timeout_s) as http:
                    response = await http.get(
                        self._url,
                        headers={"Accept": "application/json", "Authorization": f"Bearer {self._secret_key}"},
                    )
                response.raise_for_status()
                keys = {
                    jwk["kid"]: pem
                    for jwk in response.json().get("keys", [])
                    if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and (pem := _pem(jwk)) is not None
                }
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                self._failed = True
                log.warning("Clerk JWKS fetch failed (keeping %d known keys): %r", len(self._keys), exc)
            else:
                self._keys, self._failed = keys, False
            finally:
                self._fetched_at = time.monotonic()
