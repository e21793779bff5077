"""The `users` collection: people known from Clerk, referenced by sessions as host and participant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


class UserRepo:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._users = db.users

    async def by_clerk_id(self, clerk_id: str) -> Document | None:
        return await self._users.find_one({"clerkId": clerk_id})

    async def by_ids(self, ids: Iterable[ObjectId]) -> dict[ObjectId, Document]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        cursor = self._users.find({"_id": {"$in": wanted}}, PUBLIC_FIELDS)
        return {doc["_id"]: doc async for doc in cursor}

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
