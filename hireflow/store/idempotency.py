"""The `idempotency_keys` collection: what a create request sent with an `Idempotency-Key` produced.

A record `{_id: "<user>:<sha256 of key>", fingerprint, session, createdAt}` is claimed *before* the
session is inserted, naming the session id the request chose. A retry of the same request (same user,
same key, same body) finds the record and answers with that session; if the first attempt died
between the claim and the insert, the retry inserts it under the recorded id, so it is never stored
twice. Records expire after `IDEMPOTENCY_TTL_S` (a TTL index, and checked here too, since a TTL
monitor deletes lazily).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hireflow.errors import Unprocessable
from hireflow.store.mongo import IDEMPOTENCY_TTL_S, Document
from hireflow.timeutil import utcnow

_CLAIM_ATTEMPTS = 3


class IdempotencyRepo:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db.idempotency_keys

    async def claim(self, user_id: ObjectId, key: str, fingerprint: str, session_id: ObjectId) -> ObjectId:
        """The session id this key stands for: `session_id` when the key is new (now recorded), else the
        one recorded by the first request. Raises Unprocessable when that request's body differed."""
        record_id = f"{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"
        for _attempt in range(_CLAIM_ATTEMPTS):
            try:
                await self._keys.insert_one(
                    {"_id": record_id, "fingerprint": fingerprint, "session": session_id, "createdAt": utcnow()}
                )
                return session_id
            except DuplicateKeyError:
                found = await self._keys.find_one({"_id": record_id})
            if found is None:
                continue  # expired between the insert and the read: claim it again
            if found["createdAt"] < utcnow() - timedelta(seconds=IDEMPOTENCY_TTL_S):
                await self._keys.delete_one({"_id": record_id, "createdAt": found["createdAt"]})
                continue
            if found["fingerprint"] != fingerprint:
                raise Unprocessable("Idempotency-Key was already used with a different request")
            recorded: ObjectId = found["session"]
            return recorded
        raise Unprocessable("Idempotency-Key could not be claimed, please retry")
