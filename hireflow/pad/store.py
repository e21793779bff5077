"""Pads in MongoDB: a log of group-commit batches (`pad_updates`) and one snapshot per pad (`pad_snapshots`).

One stored document per batch, whatever the number of pads in it: `{_id, pads: [pad…], u: {"<pad>":
[{s, f, q, u}…]}, at}`. Each entry holds the updates `f..q` (merged) of one life `s` of a pad in one web
process: `src` names that life and `seq` counts its updates from 1, so each writer appends without
contending with the others and a reader can tell when it missed one. Stored documents per second
therefore follow the batch rate, not the number of pads (a MongoDB-wire server pays per document).

Yjs updates are idempotent and commute, so a pad is the merge of its snapshot and every entry for it
still in the log, in any order. Loading a pad reads its snapshot and, through the multikey index on
`pads`, only its own entries of the batches that hold it. A checkpoint (`fold`) merges whole batch
documents into the snapshots of every pad they hold (each snapshot written only if no other checkpoint
won the race, else merged again), and only then deletes them: a crash in between only leaves updates
applied twice. Each instance folds the batches it wrote, every `pad_compact_updates` of them, and any
instance folds batches older than `ORPHAN_AFTER_S` (those of a dead instance, or of a quiet one), so a
load reads a bounded number of batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from pycrdt import Doc, merge_updates
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hireflow.store.mongo import Document
from hireflow.timeutil import utcnow

LOG_INDEXES = [
    IndexModel([("pads", ASCENDING)], name="pads"),
    IndexModel([("at", ASCENDING)], name="at"),
]
_LOAD_RETRIES = 5
_FOLD_RETRIES = 20
ORPHAN_AFTER_S = 60.0
"""Batches this old are folded by whichever instance looks (their writer may be dead)."""


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
        self._log = db.pad_updates
        self._snapshots = db.pad_snapshots
        self._sessions = db.sessions

    async def ensure_indexes(self) -> None:
        await self._log.create_indexes(LOG_INDEXES)

    async def ended_since(self, since: datetime) -> set[ObjectId]:
        """Sessions (so pads) whose stored `endedAt` is at or after `since`: the authority on freezing,
        whatever any instance has heard, so a freeze survives the death of the instance that ended the
        session before it told the others. One index range read, whatever the number of pads."""
        docs = self._sessions.find({"endedAt": {"$gte": since}}, {"_id": 1})
        return {doc["_id"] async for doc in docs}

    async def append(self, batch_id: ObjectId, batch: Sequence[PendingUpdate]) -> None:
        """Store a batch as one document. Safe to retry after an unknown outcome with the same
        `batch_id`: a batch already stored by an earlier attempt is a duplicate `_id`, and counts."""
        entries: dict[str, list[Document]] = defaultdict(list)
        for u in batch:
            entries[str(u.pad)].append({"s": u.src, "f": u.first or u.seq, "q": u.seq, "u": Binary(u.update)})
        doc = {"_id": batch_id, "pads": [ObjectId(pad) for pad in entries], "u": entries, "at": utcnow()}
        try:
            await self._log.insert_one(doc)
        except DuplicateKeyError:
            return

    async def load(self, pad: ObjectId) -> Stored:
        """Snapshot + this pad's entries still in the log. Retried when a checkpoint lands between the
        two reads (it may have deleted batches that the snapshot read first does not hold yet)."""
        for _attempt in range(_LOAD_RETRIES):
            snap = await self._snapshots.find_one({"_id": pad})
            log = await self._entries(pad)
            again = await self._snapshots.find_one({"_id": pad}, {"version": 1})
            if (snap or {}).get("version", 0) == (again or {}).get("version", 0):
                return _merge(snap, log)
        snap = await self._snapshots.find_one({"_id": pad})
        return _merge(snap, await self._entries(pad))

    async def _entries(self, pad: ObjectId) -> list[Document]:
        """This pad's entries of every batch holding it (projected: not the other pads' entries)."""
        key = str(pad)
        docs = await self._log.find({"pads": pad}, {f"u.{key}": 1, "at": 1}).to_list(None)
        return [{**entry, "at": doc["at"], "_id": doc["_id"]} for doc in docs for entry in doc["u"].get(key, [])]

    async def fold(self, batch_ids: Sequence[ObjectId]) -> int:
        """Checkpoint: merge these batches into the snapshots of every pad they hold, then delete them.
        The number of batches folded (those already gone were folded by someone else)."""
        docs = await self._log.find({"_id": {"$in": list(batch_ids)}}).to_list(None)
        if not docs:
            return 0
        entries: dict[ObjectId, list[Document]] = defaultdict(list)
        for doc in docs:
            for key, items in doc["u"].items():
                entries[ObjectId(key)] += [{**item, "at": doc["at"]} for item in items]
        for pad, items in entries.items():
            await self._fold_one(pad, items)
        await self._log.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
        return len(docs)

    async def _fold_one(self, pad: ObjectId, items: list[Document]) -> None:
        """Merge entries into the pad's snapshot, written only over the version it was merged with
        (another checkpoint of the same pad may win the race: then merge into its snapshot instead)."""
        for _attempt in range(_FOLD_RETRIES):
            snap = await self._snapshots.find_one({"_id": pad})
            # Merged as updates, not through a document: these batches need not hold everything their
            # updates depend on (that may sit in a batch of another instance, not folded yet), and a
            # document would drop what it cannot integrate yet. A load integrates it all.
            parts = ([bytes(snap["state"])] if snap is not None else []) + [bytes(item["u"]) for item in items]
            marks, updated_at = _marks(snap, items)
            version = (snap or {}).get("version", 0)
            doc = {
                "state": Binary(merge_updates(*parts) if len(parts) > 1 else parts[0]),
                "marks": marks,
                "version": version + 1,
                "updatedAt": updated_at or utcnow(),
            }
            if snap is None:
                try:
                    await self._snapshots.insert_one({"_id": pad, **doc})
                    return
                except DuplicateKeyError:
                    continue
            result = await self._snapshots.update_one({"_id": pad, "version": version}, {"$set": doc})
            if result.matched_count:
                return
        raise RuntimeError(f"pad {pad}: could not write its snapshot after {_FOLD_RETRIES} attempts")

    async def orphans(self, limit: int) -> list[ObjectId]:
        """Batches older than `ORPHAN_AFTER_S`, oldest first: their writer did not fold them."""
        cutoff = utcnow() - timedelta(seconds=ORPHAN_AFTER_S)
        docs = self._log.find({"at": {"$lt": cutoff}}, {"_id": 1}).sort("at", ASCENDING).limit(limit)
        return [doc["_id"] async for doc in docs]


def _marks(snap: Document | None, log: list[Document]) -> tuple[dict[str, int], datetime | None]:
    """How far each writer got, and the last change, over a snapshot and log entries."""
    marks: dict[str, int] = dict((snap or {}).get("marks", {}))
    updated_at: datetime | None = (snap or {}).get("updatedAt")
    for entry in log:
        marks[entry["s"]] = max(marks.get(entry["s"], 0), entry["q"])
        if updated_at is None or entry["at"] > updated_at:
            updated_at = entry["at"]
    return marks, updated_at


def _merge(snap: Document | None, log: list[Document]) -> Stored:
    """The whole stored pad: its snapshot and every entry of it still in the log, which together hold
    everything any stored update depends on (an update is stored only after what its sender saw)."""
    doc: Doc[Any] = Doc()
    if snap is not None:
        doc.apply_update(bytes(snap["state"]))
    for entry in log:
        doc.apply_update(bytes(entry["u"]))
    marks, updated_at = _marks(snap, log)
    state = doc.get_update()
    return Stored(
        state=state,
        marks=marks,
        updated_at=updated_at,
        log_ids=sorted({entry["_id"] for entry in log if "_id" in entry}),
        version=(snap or {}).get("version", 0),
        size=len(state),
    )
