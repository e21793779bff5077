"""MongoDB client lifecycle and the indexes every query relies on."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.uri_parser import parse_uri

Document = dict[str, Any]

DEFAULT_DB_NAME = "hireflow"

USER_INDEXES = [
    IndexModel([("clerkId", ASCENDING)], unique=True, name="clerkId_unique"),
    IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
]

# Each list query has an index whose prefix is its equality filter and whose tail is its sort,
# so none of them scans the collection or sorts more than it returns. The "my recent" query is
# run as two single-field queries (host, participant) rather than one `$or`: some MongoDB-wire
# servers (SecantusDB among them) plan an `$or` as a collection scan.
SESSION_INDEXES = [
    IndexModel([("callId", ASCENDING)], unique=True, name="callId_unique"),
    IndexModel([("status", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)], name="status_recent"),
    IndexModel(
        [("host", ASCENDING), ("status", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
        name="host_status_recent",
    ),
    IndexModel(
        [("participant", ASCENDING), ("status", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
        name="participant_status_recent",
    ),
    IndexModel([("streamDirty", ASCENDING), ("updatedAt", ASCENDING)], name="streamDirty_updated"),
    IndexModel([("outbox.at", ASCENDING)], name="outbox_at"),
    # The pad writer asks, before each batch, which sessions ended since it last asked (pad/writer.py).
    IndexModel([("endedAt", ASCENDING)], name="endedAt"),
]

# Idempotency-Key records expire a day after they were made (the key may then be used again).
IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_INDEXES = [
    IndexModel([("createdAt", ASCENDING)], expireAfterSeconds=IDEMPOTENCY_TTL_S, name="createdAt_ttl"),
]

# Code runs: a session's latest runs, and the reconciler's look for runs stuck queued or running.
RUN_INDEXES = [
    IndexModel([("session", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)], name="session_recent"),
    IndexModel([("status", ASCENDING), ("updatedAt", ASCENDING)], name="status_updated"),
]


def connect(
    db_url: str, *, timeout_ms: int, retry_writes: bool = True, appname: str = "hireflow"
) -> tuple[AsyncMongoClient[Document], AsyncDatabase[Document]]:
    """Open a client (lazily connected) and pick the database named by the URI path.

    `retry_writes=False` is for a store whose every write is idempotent and retried by its own code
    (the pad store): a retryable write makes the server keep a record of it, which costs SecantusDB a
    scan of up to 10,000 records per write (1 ms a write becomes 15), and buys such a store nothing."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        db_url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
        appname=appname,
        # Replica sets (README, "Running at scale"): a read or write that meets an election or a dropped
        # connection is retried once by PyMongo on the new primary; reads go to the primary, so a
        # client always reads its own writes. These are PyMongo's defaults, stated so nobody turns
        # them off in the URI by accident: explicit keyword arguments win over URI options.
        retryWrites=retry_writes,
        retryReads=True,
        readPreference="primary",
    )
    name = parse_uri(db_url).get("database") or DEFAULT_DB_NAME
    return client, client[name]


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    """Create every index; a no-op when they already exist, so every process may call it at start-up."""
    await db.users.create_indexes(USER_INDEXES)
    await db.sessions.create_indexes(SESSION_INDEXES)
    await db.idempotency_keys.create_indexes(IDEMPOTENCY_INDEXES)
    await db.runs.create_indexes(RUN_INDEXES)
