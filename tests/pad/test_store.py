"""The pad store on the real MongoDB-wire server: one document per batch for every pad in it, loads
that read only their own pad's entries, checkpoints that compact an instance's batches into a few log
documents, and folds that merge old log documents into every pad's snapshot (also when two instances
fold the same documents at once), none of them losing an update; and the lease that lets one instance
at a time fold."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from bson import ObjectId
from pycrdt import Doc, Text, merge_updates
from pymongo import AsyncMongoClient

from hireflow.pad import checkpoint
from hireflow.pad.checkpoint import Checkpointer
from hireflow.pad.store import FOLD_AFTER_S, Batch, PadStore, PendingUpdate
from hireflow.timeutil import utcnow
from tests.support.commands import Finds
from tests.support.workers import eventually


def _typist() -> tuple[Doc[Any], Text]:
    doc: Doc[Any] = Doc()
    return doc, doc.get("code", type=Text)


def _type(doc: Doc[Any], text: Text, chars: str) -> bytes:
    before = doc.get_state()
    text += chars
    return doc.get_update(before)


def _type_at(doc: Doc[Any], text: Text, index: int, chars: str) -> bytes:
    before = doc.get_state()
    text.insert(index, chars)
    return doc.get_update(before)


def _batch(batch_id: ObjectId, entries: list[PendingUpdate]) -> Batch:
    return Batch(batch_id, utcnow(), entries)


def _text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return str(doc.get("code", type=Text))


async def test_batches_of_many_pads_are_one_document_compacted_then_folded_into_each_pads_snapshot(mongo):
    store = PadStore(mongo)
    await store.ensure_indexes()
    pads = [ObjectId() for _ in range(3)]
    typists = [_typist() for _ in pads]
    batches = []
    for seq in range(1, 5):
        entries = [PendingUpdate(pad, f"src{i}", seq, _type(*typists[i], f"{i}{seq};")) for i, pad in enumerate(pads)]
        batches.append(_batch(ObjectId(), entries))
        await store.append(batches[-1])
        await store.append(batches[-1])  # a retry after an unknown outcome: nothing twice
    assert await mongo.pad_updates.count_documents({}) == 4
    expected = [str(text) for _doc, text in typists]
    updated_at = [(await store.load(pad)).updated_at for pad in pads]

    # The writer compacts its first three batches: one document in their place, no snapshot yet.
    assert await store.compact_written(batches[:3]) == 3
    assert await mongo.pad_updates.count_documents({}) == 2
    assert await mongo.pad_updates.count_documents({"_id": {"$in": [batch.id for batch in batches[:3]]}}) == 0
    assert await mongo.pad_snapshots.count_documents({}) == 0
    for i, pad in enumerate(pads):
        stored = await store.load(pad)
        assert _text(stored.state) == expected[i]
        assert stored.marks == {f"src{i}": 4}
        assert stored.updated_at == updated_at[i]  # the time of its last update, not of the compaction
        assert len(stored.log_ids) == 2

    # Two instances' sweeps fold the whole log at once.
    log_ids = [doc["_id"] async for doc in mongo.pad_updates.find({}, {"_id": 1})]
    folded = await asyncio.gather(store.fold(log_ids), store.fold(log_ids))
    assert all(0 <= count <= 2 for count in folded)  # each counts what was still there to read
    assert await mongo.pad_updates.count_documents({}) == 0
    assert await mongo.pad_snapshots.count_documents({}) == 3
    for i, pad in enumerate(pads):
        stored = await store.load(pad)
        assert _text(stored.state) == expected[i] and stored.marks == {f"src{i}": 4} and not stored.log_ids
        assert stored.updated_at == updated_at[i]


async def test_a_checkpoint_keeps_updates_whose_dependencies_are_not_folded_yet(mongo):
    """B's edit depends on A's, in a batch another instance wrote: the checkpoint that folds B's batch
    alone must keep B's edit although its snapshot cannot integrate it yet."""
    store = PadStore(mongo)
    pad = ObjectId()
    a_doc, a_text = _typist()
    a_update = _type(a_doc, a_text, "hello")
    b_doc, b_text = _typist()
    b_doc.apply_update(a_update)
    b_update = _type(b_doc, b_text, " world")  # depends on A's update
    b_batch = _batch(ObjectId(), [PendingUpdate(pad, "b", 1, b_update)])
    a_batch = _batch(ObjectId(), [PendingUpdate(pad, "a", 1, a_update)])
    await store.append(b_batch)
    await store.append(a_batch)
    assert await store.compact_written([b_batch]) == 1  # B's instance compacts its batch alone
    assert _text((await store.load(pad)).state) == "hello world"
    compacted = [doc["_id"] async for doc in mongo.pad_updates.find({"_id": {"$ne": a_batch.id}})]
    assert await store.fold(compacted) == 1  # into the snapshot, before A's batch
    assert _text((await store.load(pad)).state) == "hello world"
    assert await store.fold([a_batch.id]) == 1
    assert _text((await store.load(pad)).state) == "hello world"


async def test_a_fold_folds_and_deletes_only_the_batches_asked_for(mongo):
    """Batches of two instances interleave in `_id` order: folding one instance's batches leaves the
    other's batch in the log, still part of its pad."""
    store = PadStore(mongo)
    mine, theirs = ObjectId(), ObjectId()
    doc, text = _typist()
    first, second, third = (_type(doc, text, chars) for chars in ("a", "b", "c"))
    ids = sorted(ObjectId() for _ in range(3))
    await store.append(_batch(ids[0], [PendingUpdate(mine, "m", 1, first)]))
    await store.append(_batch(ids[1], [PendingUpdate(theirs, "t", 1, _type(*_typist(), "theirs"))]))
    await store.append(_batch(ids[2], [PendingUpdate(mine, "m", 3, merge_updates(second, third), first=2)]))
    assert await store.fold([ids[0], ids[2]]) == 2
    assert [doc["_id"] async for doc in mongo.pad_updates.find({})] == [ids[1]]
    assert _text((await store.load(mine)).state) == "abc"
    assert (await store.load(mine)).marks == {"m": 3}
    assert _text((await store.load(theirs)).state) == "theirs"


async def test_start_up_drops_the_per_pad_index_an_earlier_version_made(mongo):
    await mongo.pad_updates.create_index("pads", name="pads")
    await PadStore(mongo).ensure_indexes()
    names = {index["name"] async for index in await mongo.pad_updates.list_indexes()}
    assert names == {"_id_", "at"}
    await PadStore(mongo).ensure_indexes()  # again, as every instance does at start-up


@pytest.mark.parametrize("compacted_first", [True, False], ids=["compacted", "batches"])
async def test_a_fold_over_more_pads_than_one_bulk_write_folds_them_all(mongo, compacted_first):
    store = PadStore(mongo)
    pads = [ObjectId() for _ in range(120)]  # three bulk writes of snapshots, two compacted documents
    typists = [_typist() for _ in pads]
    batches = []
    for seq, batch_id in enumerate(sorted(ObjectId() for _ in range(60)), 1):  # two deletes
        batches.append(
            _batch(batch_id, [PendingUpdate(pad, "w", seq, _type(*typists[i], "x")) for i, pad in enumerate(pads)])
        )
        await store.append(batches[-1])
    if compacted_first:
        assert await store.compact_written(batches) == 60
        assert await mongo.pad_updates.count_documents({}) == 2
    log_ids = [doc["_id"] async for doc in mongo.pad_updates.find({}, {"_id": 1})]
    assert await store.fold(log_ids) == len(log_ids)
    assert await mongo.pad_updates.count_documents({}) == 0
    for pad in (pads[0], pads[55], pads[119]):
        stored = await store.load(pad)
        assert _text(stored.state) == "x" * 60 and stored.marks == {"w": 60} and not stored.log_ids


async def test_a_checkpoint_compacts_what_was_written_before_it_and_leaves_the_rest_for_the_next(mongo, monkeypatch):
    """Under a steady load, what is written while a checkpoint runs waits for the next `every` updates:
    taking it at once would keep a busy instance checkpointing over and over."""

    class HeldStore(PadStore):
        """The real store, with each checkpoint held at its start until the test lets it go."""

        def __init__(self, db: Any) -> None:
            super().__init__(db)
            self.folds: list[list[ObjectId]] = []
            self.folding = asyncio.Event()
            self.go = asyncio.Event()

        async def compact_written(self, batches: Sequence[Batch]) -> int:
            self.folds.append([batch.id for batch in batches])
            self.folding.set()
            await self.go.wait()
            return await super().compact_written(batches)

    monkeypatch.setattr(checkpoint, "JITTER", 0.0)  # every checkpoint after exactly `every` updates
    store = HeldStore(mongo)
    checkpoints = Checkpointer(store, every=2)
    running = asyncio.create_task(checkpoints.run_forever())
    doc, text = _typist()
    batches = [_batch(ObjectId(), [PendingUpdate(ObjectId(), "w", seq, _type(doc, text, "x"))]) for seq in (1, 2, 3, 4)]
    for batch in batches:
        await store.append(batch)
    checkpoints.wrote(batches[0], 1)
    checkpoints.wrote(batches[1], 1)
    await asyncio.wait_for(store.folding.wait(), 5)
    checkpoints.wrote(batches[2], 1)  # while the fold runs
    store.go.set()

    async def compacted(count: int) -> bool:
        return checkpoints.compacted_total == count

    await eventually(partial(compacted, 2))
    await asyncio.sleep(0.2)
    assert store.folds == [[batches[0].id, batches[1].id]]  # one update is not enough for another
    checkpoints.wrote(batches[3], 1)
    await eventually(partial(compacted, 4))
    assert store.folds[1] == [batches[2].id, batches[3].id]
    assert await mongo.pad_updates.count_documents({"_id": {"$in": [batch.id for batch in batches]}}) == 0
    assert await mongo.pad_updates.count_documents({}) == 2  # one compacted document each
    checkpoints.stop()
    await asyncio.wait_for(running, 5)


async def test_a_load_keeps_updates_stored_before_what_they_depend_on(mongo):
    """The log is read in `_id` order, which is not always the order of a writer's updates (another
    process's batch in the same second, or a document written after batches it comes before). Two
    updates read before what they depend on must both be in the load: applied one by one, Yrs kept
    one of the two pending and dropped the other for about half of these edit sequences."""
    store = PadStore(mongo)
    for seed in range(10):
        rng = random.Random(seed)
        pad = ObjectId()
        doc, text = _typist()
        updates = [_type_at(doc, text, rng.randint(0, len(str(text))), chars) for chars in "abcdefgh"]
        ids = sorted(ObjectId() for _ in range(4))
        await store.append(_batch(ids[0], [PendingUpdate(pad, "w", 4, merge_updates(*updates[:4]), first=1)]))
        await store.append(_batch(ids[1], [PendingUpdate(pad, "w", 7, updates[6])]))
        await store.append(_batch(ids[2], [PendingUpdate(pad, "w", 8, updates[7])]))
        await store.append(_batch(ids[3], [PendingUpdate(pad, "w", 6, merge_updates(*updates[4:6]), first=5)]))
        stored = await store.load(pad)
        assert _text(stored.state) == str(text), f"seed {seed}"
        assert stored.marks == {"w": 8}


async def test_the_fold_lease_is_one_instances_until_it_gives_it_back_or_it_runs_out(mongo):
    store = PadStore(mongo)
    assert await store.claim_fold("a")
    assert not await store.claim_fold("b")
    assert await store.claim_fold("a")  # renewed
    await store.release_fold("b")  # not b's to give back
    assert not await store.claim_fold("b")
    await store.release_fold("a")
    assert await store.claim_fold("b")
    await mongo.pad_leases.update_one({"_id": "fold"}, {"$set": {"until": utcnow() - timedelta(seconds=1)}})  # b died
    assert await store.claim_fold("a")


async def test_instances_sweeping_at_once_fold_each_old_document_once(mongo):
    """Instances started together sweep together: the one that gets the lease folds, the other none."""
    pad = ObjectId()
    doc, text = _typist()
    old = utcnow() - timedelta(seconds=FOLD_AFTER_S + 5)
    updates = [PendingUpdate(pad, "w", seq, _type(doc, text, f"{seq};")) for seq in range(1, 7)]
    batches = [Batch(ObjectId(), old, [update]) for update in updates]
    for batch in batches:
        await PadStore(mongo).append(batch)
    sweeps = [Checkpointer(PadStore(mongo), every=100) for _ in range(2)]
    await asyncio.gather(*(sweep.fold_orphans() for sweep in sweeps))
    assert sorted(sweep.folded_total for sweep in sweeps) == [0, 6]
    assert await mongo.pad_updates.count_documents({}) == 0
    assert await mongo.pad_leases.count_documents({}) == 0  # given back
    assert _text((await PadStore(mongo).load(pad)).state) == str(text)


async def test_loads_asked_for_together_share_one_read_of_the_log(infra, db_name, mongo):
    """A hundred and fifty pads loaded at once (an instance's rooms repairing after its relay
    reconnected): two reads of the log (100 pads, then 50), each pad its own state, the same as a load
    alone gives."""
    pads = [ObjectId() for _ in range(150)]
    typists = {pad: _typist() for pad in pads}
    for seq in range(1, 4):
        entries = [PendingUpdate(pad, "w", seq, _type(*typists[pad], f"{pad}-{seq};")) for pad in pads]
        await PadStore(mongo).append(_batch(ObjectId(), entries))
    finds = Finds("pad_updates")
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongo_url(db_name), tz_aware=True, event_listeners=[finds])
    try:
        store = PadStore(client[db_name])
        loaded = await asyncio.gather(*(store.load(pad) for pad in pads))
        assert finds.count == 2
        for pad, stored in zip(pads, loaded, strict=True):
            assert _text(stored.state) == str(typists[pad][1])
            assert stored.marks == {"w": 3}
        alone = await store.load(pads[0])
        assert (alone.state, alone.marks) == (loaded[0].state, loaded[0].marks)
        assert finds.count == 3
    finally:
        await client.close()


class _FoldBetweenReads(PadStore):
    """A store whose first read of the log comes after another instance folded every batch: the fold
    lands between the load's read of the snapshots and its read of the log."""

    def __init__(self, db: Any, batch_ids: list[ObjectId]) -> None:
        super().__init__(db)
        self._fold_first: list[ObjectId] | None = batch_ids

    async def _entries(self, pads: list[ObjectId]) -> dict[ObjectId, list[Any]]:
        if self._fold_first is not None:
            batch_ids, self._fold_first = self._fold_first, None
            await PadStore(self._log.database).fold(batch_ids)
        return await super()._entries(pads)


async def test_a_load_that_a_fold_overtakes_reads_again(mongo):
    """The snapshots a load read first lack what the fold took out of the log before the load read
    it: the load sees the snapshot's version move and reads both again, missing nothing."""
    pads = [ObjectId() for _ in range(3)]
    typists = {pad: _typist() for pad in pads}
    batches = [
        _batch(ObjectId(), [PendingUpdate(pad, "w", seq, _type(*typists[pad], f"{seq};")) for pad in pads])
        for seq in range(1, 4)
    ]
    for batch in batches:
        await PadStore(mongo).append(batch)
    store = _FoldBetweenReads(mongo, [batch.id for batch in batches])
    loaded = await asyncio.gather(*(store.load(pad) for pad in pads))
    assert await mongo.pad_updates.count_documents({}) == 0  # the fold took them all
    for pad, stored in zip(pads, loaded, strict=True):
        assert _text(stored.state) == str(typists[pad][1])
