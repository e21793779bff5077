"""The `users` collection: people known from Clerk, referenced by sessions as host and participant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hireflow.errors import Conflict
from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

PUBLIC_FIELDS = {"name": 1, "email": 1, "profileImage": 1, "clerkId": 1}


@dataclass(frozen=True)
class Profile:
    """What HireFlow keeps of a Clerk user."""

    clerk_id: str
    name: str
    email: str
    profile_image: str


def public_user(doc: Document) -> dict[str, Any]:
    """The user object the frontend sees inside sessions (Mongoose `populate` shape)."""
    return {
        "_id": str(doc["_id"]),
        "name": doc.get("name", ""),
        "email": doc.get("email", ""),
        "profileImage": doc.get("profileImage", ""),
        "clerkId": doc.get("clerkId", ""),
    }


SyncOutcome = Literal["created", "updated", "unchanged", "stale", "deleted-earlier"]


class UserRepo:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._users = db.users
        # Clerk ids of deleted users, so that a `created`/`updated` delivered after the `deleted`
        # cannot bring a user back (Clerk never reuses an id).
        self._deleted = db.deleted_users

    async def by_clerk_id(self, clerk_id: str) -> Document | None:
        return await self._users.find_one({"clerkId": clerk_id})

    async def by_ids(self, ids: Iterable[ObjectId]) -> dict[ObjectId, Document]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        cursor = self._users.find({"_id": {"$in": wanted}}, PUBLIC_FIELDS)
        return {doc["_id"]: doc async for doc in cursor}

    async def apply_clerk(self, profile: Profile, updated_at_ms: int) -> SyncOutcome:
        """Store Clerk's version of the user unless a newer one (by Clerk's `updated_at`) is stored,
        or the user was deleted. Idempotent: the same event twice changes nothing."""
        if await self._deleted.find_one({"_id": profile.clerk_id}) is not None:
            return "deleted-earlier"
        now = utcnow()
        fields = {
            "name": profile.name,
            "email": profile.email,
            "profileImage": profile.profile_image,
            "clerkUpdatedAt": updated_at_ms,
            "updatedAt": now,
        }
        try:
            result = await self._users.update_one(
                {"clerkId": profile.clerk_id, "clerkUpdatedAt": {"$lt": updated_at_ms}},
                {"$set": fields, "$setOnInsert": {"createdAt": now}},
                upsert=True,
            )
        except DuplicateKeyError as exc:
            if "email" in (exc.details or {}).get("keyPattern", {}):
                raise Conflict(f"email {profile.email} belongs to another user") from exc
            # A document exists that the filter did not match: newer, the same version, or stored
            # before versions were kept (no clerkUpdatedAt), which this event may overwrite.
            legacy = await self._users.update_one(
                {"clerkId": profile.clerk_id, "clerkUpdatedAt": {"$exists": False}}, {"$set": fields}
            )
            if legacy.matched_count:
                return "updated"
            stored = await self._users.find_one({"clerkId": profile.clerk_id}, {"clerkUpdatedAt": 1})
            return "unchanged" if stored is not None and stored.get("clerkUpdatedAt") == updated_at_ms else "stale"
        if result.upserted_id is not None:
            return "created"
        return "updated" if result.modified_count else "unchanged"

    async def delete_by_clerk_id(self, clerk_id: str) -> Document | None:
        """Remove the user and remember the deletion; the removed document, or None if there was none."""
        await self._deleted.update_one({"_id": clerk_id}, {"$setOnInsert": {"deletedAt": utcnow()}}, upsert=True)
        return await self._users.find_one_and_delete({"clerkId": clerk_id})

    async def insert_if_missing(self, profile: Profile) -> Document:
        """Insert the user unless one with this Clerk id exists; either way return the stored document.

        Safe under concurrency: two requests racing for the same new user end with one document.
        """
        now = utcnow()
        fields = {
            "clerkId": profile.clerk_id,
            "name": profile.name,
            "email": profile.email,
            "profileImage": profile.profile_image,
            "createdAt": now,
            "updatedAt": now,
        }
        for _attempt in range(2):
            try:
                doc = await self._users.find_one_and_update(
                    {"clerkId": profile.clerk_id},
                    {"$setOnInsert": fields},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError as exc:
                if "email" in (exc.details or {}).get("keyPattern", {}):
                    raise Conflict("A user with this email already exists") from exc
                continue  # lost the upsert race on clerkId: the winner's document is there now
            if doc is not None:
                return doc
        found = await self.by_clerk_id(profile.clerk_id)
        if found is None:  # pragma: no cover - only if the document vanished between two statements
            raise Conflict("User could not be stored")
        return found
