"""MongoDB replica-set semantics as configured (no replica set runs here; see README "Running at scale"):
retryable reads and writes and primary reads whatever the URI says, majority writes for sessions."""

from __future__ import annotations

from pymongo import ReadPreference

from hireflow.store import mongo
from hireflow.store.sessions import SessionRepo


async def test_retryable_primary_reads_and_majority_session_writes():
    url = "mongodb://m1:27017,m2:27017,m3:27017/hf?replicaSet=rs0&retryWrites=false&retryReads=false&readPreference=nearest"
    client, db = mongo.connect(url, timeout_ms=1000)  # lazily connected: nothing is reached here
    try:
        assert client.options.retry_writes and client.options.retry_reads
        assert client.read_preference == ReadPreference.PRIMARY
        assert client.options.replica_set_name == "rs0" and db.name == "hf"
        sessions = SessionRepo(db)._sessions
        assert sessions.write_concern.document == {"w": "majority"}
        assert sessions.read_preference == ReadPreference.PRIMARY
    finally:
        await client.close()
