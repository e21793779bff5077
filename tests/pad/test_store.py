"""The pad store on the real MongoDB-wire server: one document per batch for every pad in it, loads
that read only their own pad's entries, and checkpoints that fold shared batches into every pad's
snapshot (also when two instances fold the same batches at once) without losing an update."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId
from pycrdt import Doc, Text, merge_updates

from hireflow.pad.store import PadStore, PendingUpdate


def _typist() -> tuple[Doc[Any], Text]:
    doc: Doc[Any] = Doc()
    return doc, doc.get("code", type=Text)


def _type(doc: Doc[Any], text: Text, chars: str) -> bytes:
    before = doc.get_state()
    text += chars
    return doc.get_update(before)


def _text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return str(doc.get("code", type=Text))


async def test_batches_of_many_pads_are_one_document_and_fold_into_each_pads_snapshot(mongo):
    store = PadStore(mongo)
    await store.ensure_indexes()
    pads = [ObjectId() for _ in range(3)]
    typists = [_typist() for _ in pads]
    batch_ids = []
    for seq in range(1, 5):
        batch = [PendingUpdate(pad, f"src{i}", seq, _type(*typists[i], f"{i}{seq};")) for i, pad in enumerate(pads)]
        batch_ids.append(ObjectId())
        await store.append(batch_ids[-1], batch)
        await store.append(batch_ids[-1], batch)  # a retry after an unknown outcome: nothing twice
    assert await mongo.pad_updates.count_documents({}) == 4
    expected = [str(text) for _doc, text in typists]

    # Two instances fold the same three batches at once (a writer and an orphan sweep).
    folded = await asyncio.gather(store.fold(batch_ids[:3]), store.fold(batch_ids[:3]))
    assert 3 in folded
    assert await mongo.pad_updates.count_documents({}) == 1
    assert await mongo.pad_snapshots.count_documents({}) == 3
    for i, pad in enumerate(pads):
        stored = await store.load(pad)
        assert _text(stored.state) == expected[i]
        assert stored.marks == {f"src{i}": 4}
        assert len(stored.log_ids) == 1  # only the batch not folded yet
    assert await store.fold(batch_ids) == 1  # the folded ones are gone: only the last is left to fold
    assert await mongo.pad_updates.count_documents({}) == 0
    assert [_text((await store.load(pad)).state) for pad in pads] == expected


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
    b_batch, a_batch = ObjectId(), ObjectId()
    await store.append(b_batch, [PendingUpdate(pad, "b", 1, b_update)])
    await store.append(a_batch, [PendingUpdate(pad, "a", 1, a_update)])
    assert await store.fold([b_batch]) == 1  # B's instance folds its batch alone
    assert _text((await store.load(pad)).state) == "hello world"
    assert await store.fold([a_batch]) == 1
    assert _text((await store.load(pad)).state) == "hello world"


async def test_a_fold_reads_a_range_of_batches_but_folds_and_deletes_only_those_asked_for(mongo):
    """Batches of two instances interleave in `_id` order: folding one instance's batches (read as one
    range) leaves the other's batch in the log, still part of its pad."""
    store = PadStore(mongo)
    mine, theirs = ObjectId(), ObjectId()
    doc, text = _typist()
    first, second, third = (_type(doc, text, chars) for chars in ("a", "b", "c"))
    ids = sorted(ObjectId() for _ in range(3))
    await store.append(ids[0], [PendingUpdate(mine, "m", 1, first)])
    await store.append(ids[1], [PendingUpdate(theirs, "t", 1, _type(*_typist(), "theirs"))])
    await store.append(ids[2], [PendingUpdate(mine, "m", 3, merge_updates(second, third), first=2)])
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


async def test_a_fold_over_more_pads_than_one_bulk_write_folds_them_all(mongo):
    store = PadStore(mongo)
    pads = [ObjectId() for _ in range(120)]  # three bulk writes of snapshots
    typists = [_typist() for _ in pads]
    batch_ids = sorted(ObjectId() for _ in range(60))  # two deletes
    for seq, batch_id in enumerate(batch_ids, 1):
        await store.append(
            batch_id, [PendingUpdate(pad, "w", seq, _type(*typists[i], "x")) for i, pad in enumerate(pads)]
        )
    assert await store.fold(batch_ids) == 60
    assert await mongo.pad_updates.count_documents({}) == 0
    for pad in (pads[0], pads[55], pads[119]):
        stored = await store.load(pad)
        assert _text(stored.state) == "x" * 60 and stored.marks == {"w": 60} and not stored.log_ids
