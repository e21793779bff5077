"""Clerk Backend API look-ups through the official SDK's async methods."""

from __future__ import annotations

import asyncio
import logging

import httpx
from clerk_backend_api import Clerk, models
from clerk_backend_api.utils import BackoffStrategy, RetryConfig

from hireflow.clerk.profile import profile_from_clerk
from hireflow.errors import ServiceUnavailable
from hireflow.settings import Settings
from hireflow.store.users import Profile

log = logging.getLogger(__name__)


class ClerkApi:
    """The few Backend API calls HireFlow makes; owns its HTTP client (close with `aclose`)."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.clerk_secret_key.get_secret_value() if settings.clerk_secret_key else None
        self._http = httpx.AsyncClient(timeout=settings.clerk_timeout_s)
        self._timeout_s = settings.clerk_timeout_s
        self._clerk = (
            Clerk(
                bearer_auth=secret,
                server_url=settings.clerk_api_url.rstrip("/") + "/v1",
                async_client=self._http,
                timeout_ms=int(settings.clerk_timeout_s * 1000),
                # The SDK's default retries 5xx with backoff for up to an hour; a request cannot wait
                # that long, so fail fast and let the caller (or a job's own retry) decide.
                retry_config=RetryConfig("none", BackoffStrategy(0, 0, 0, 0), False),
            )
            if secret
            else None
        )

    async def fetch_profile(self, clerk_id: str) -> Profile | None:
        """The user's profile, None when Clerk does not know them (or Clerk is not configured)."""
        if self._clerk is None:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                user = await self._clerk.users.get_async(user_id=clerk_id)
        except models.ClerkBaseError as exc:
            if exc.status_code == 404:
                return None
            log.warning("Clerk user look-up failed: %s (HTTP %s)", type(exc).__name__, exc.status_code)
            raise ServiceUnavailable() from exc
        except (httpx.HTTPError, models.NoResponseError, TimeoutError) as exc:
            log.warning("Clerk user look-up failed: %s", type(exc).__name__)
            raise ServiceUnavailable() from exc
        return profile_from_clerk(user.model_dump())

    async def aclose(self) -> None:
        await self._http.aclose()
