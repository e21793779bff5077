"""Pads in MongoDB: an append-only log of updates (`pad_updates`) and one snapshot per pad (`pad_snapshots`).

Every update is stored under (pad, src, seq): `src` names one life of the pad in one web process and
`seq` counts that life's updates from 1, so each writer appends without contending with the others and
a reader can tell when it missed one. Updates of one life stored in the same batch are merged into one
document covering `first..seq`. Yjs updates are idempotent and commute, so the document is the
merge of the snapshot and every update still in the log, in any order; compaction folds the log into the
snapshot and then deletes what it folded (a crash in between only leaves updates applied twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import Binary, ObjectId
from pycrdt import Doc
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

UPDATE_INDEXES = [
    IndexModel([("pad", ASCENDING), ("src", ASCENDING), ("seq", ASCENDING)], unique=True, name="pad_src_seq"),
]
_DUPLICATE_KEY = 11000
_LOAD_RETRIES = 5


@dataclass
class Stored:
    """A pad as read from MongoDB: its merged state, how far each writer got, and its last change."""

    state: bytes
    marks: dict[str, int] = field(default_factory=dict)
    updated_at: datetime | None = None
    log_ids: list[ObjectId] = field(default_factory=list)
    version: int = 0
    size: int = 0


@dataclass(frozen=True)
class PendingUpdate:
    """Updates `first..seq` of one pad life (`src`), merged into one (or a single update: first == seq)."""

    pad: ObjectId
    src: str
    seq: int
    update: bytes
    first: int = 0


class PadStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._updates = db.pad_updates
        self._snapshots = db.pad_snapshots
        self._sessions = db.sessions

    async def frozen_among(self, pads: Iterable[ObjectId]) -> set[ObjectId]:
        """Which of these pads are frozen. The authority is the pad's session, as stored: ended (or
        gone) means frozen, whatever any instance has heard, so a freeze survives the death of the
        instance that ended the session before it told the others."""
        wanted = set(pads)
        if not wanted:
            return set()
        active = self._sessions.find({"_id": {"$in": list(wanted)}, "status": "active"}, {"_id": 1})
        return wanted - {doc["_id"] async for doc in active}

    async def ensure_indexes(self) -> None:
        await self._updates.create_indexes(UPDATE_INDEXES)

    async def append(self, batch: Sequence[PendingUpdate]) -> None:
        """Store a batch in one insert_many. Safe to retry after an unknown outcome: an update already
        stored by an earlier attempt is a duplicate (pad, src, seq) and counts as stored."""
        now = utcnow()
        docs = [
            {"pad": u.pad, "src": u.src, "seq": u.seq, "first": u.first or u.seq, "u": Binary(u.update), "at": now}
            for u in batch
        ]
        try:
            await self._updates.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                raise

    async def load(self, pad: ObjectId) -> Stored:
        """Snapshot + every update still in the log. Retried when a compaction lands between the two
        reads (it may have deleted updates that the snapshot read first does not hold yet)."""
        for _attempt in range(_LOAD_RETRIES):
            snap = await self._snapshots.find_one({"_id": pad})
            log = await self._updates.find({"pad": pad}).to_list(None)
            again = await self._snapshots.find_one({"_id": pad}, {"version": 1})
            if (snap or {}).get("version", 0) == (again or {}).get("version", 0):
                return _merge(snap, log)
        snap = await self._snapshots.find_one({"_id": pad})
        return _merge(snap, await self._updates.find({"pad": pad}).to_list(None))

    async def compact(self, pad: ObjectId) -> int:
        """Fold the log into the snapshot (written only if no other compaction won the race), then
        delete the folded updates. The number of updates folded (0 when another instance won)."""
        stored = await self.load(pad)
        if not stored.log_ids:
            return 0
        doc = {
            "state": Binary(stored.state),
            "marks": stored.marks,
            "version": stored.version + 1,
            "updatedAt": stored.updated_at or utcnow(),
        }
        if stored.version == 0:
            try:
                await self._snapshots.insert_one({"_id": pad, **doc})
            except DuplicateKeyError:
                return 0
        else:
            result = await self._snapshots.update_one({"_id": pad, "version": stored.version}, {"$set": doc})
            if result.matched_count == 0:
                return 0
        await self._updates.delete_many({"_id": {"$in": stored.log_ids}})
        return len(stored.log_ids)

    async def drop(self, pad: ObjectId) -> None:
        await self._updates.delete_many({"pad": pad})
        await self._snapshots.delete_one({"_id": pad})


def _merge(snap: Document | None, log: list[Document]) -> Stored:
    doc: Doc[Any] = Doc()
    marks: dict[str, int] = dict((snap or {}).get("marks", {}))
    updated_at: datetime | None = (snap or {}).get("updatedAt")
    if snap is not None:
        doc.apply_update(bytes(snap["state"]))
    for entry in log:
        doc.apply_update(bytes(entry["u"]))
        marks[entry["src"]] = max(marks.get(entry["src"], 0), entry["seq"])
        if updated_at is None or entry["at"] > updated_at:
            updated_at = entry["at"]
    state = doc.get_update()
    return Stored(
        state=state,
        marks=marks,
        updated_at=updated_at,
        log_ids=[entry["_id"] for entry in log],
        version=(snap or {}).get("version", 0),
        size=len(state),
    )
