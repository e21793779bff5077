"""Who is calling: Clerk id → stored user, with the late-sign-up fallback to the Clerk Backend API."""

from __future__ import annotations

from hireflow import keys
from hireflow.cache import CacheVersions, LocalCache, Versions
from hireflow.clerk.api import ClerkApi
from hireflow.errors import Unauthorized
from hireflow.store.mongo import Document
from hireflow.store.users import UserRepo

_MAX_CACHED_USERS = 50_000


class UserDirectory:
    def __init__(self, repo: UserRepo, clerk: ClerkApi, versions: CacheVersions, *, cache_max_age_s: float) -> None:
        self._repo = repo
        self._clerk = clerk
        self._versions = versions
        self._by_clerk_id: LocalCache[Document] = LocalCache(max_entries=_MAX_CACHED_USERS, max_age_s=cache_max_age_s)

    async def current(self, clerk_id: str, versions: Versions) -> Document:
        """The stored user for a verified Clerk id.

        A user the sign-up sync has not delivered yet is fetched from Clerk and inserted, so the
        request succeeds. When Clerk does not know them either (deleted, or another Clerk instance's
        token), the caller is not a user here: 401 with code `user_unknown`, on every route alike,
        rather than a 404 that reads as if the route or resource were missing. Misses are
        not cached, so inserting a new user makes no cached entry stale and needs no version bump.
        """
        cached = self._by_clerk_id.get(clerk_id, versions.users)
        if cached is not None:
            return dict(cached)  # a copy: the cached one is shared (its values are immutable)
        doc = await self._repo.by_clerk_id(clerk_id)
        if doc is None:
            profile = await self._clerk.fetch_profile(clerk_id)
            if profile is None:
                raise Unauthorized("user_unknown")
            return await self._repo.insert_if_missing(profile)
        self._by_clerk_id.put(clerk_id, versions.users, dict(doc))
        return doc

    async def changed(self) -> None:
        """Call after any update or delete of users: every instance drops what it cached."""
        await self._versions.bump(keys.USERS_VERSION)
