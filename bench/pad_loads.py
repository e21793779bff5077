"""Pad loads at once: `python bench/pad_loads.py`.

Fills a SecantusDB (`:memory:`, as the tests use) with a pad log like the one `bench/pad.py` leaves
while 500 pads are typed in (1,500 batches, each holding 25 of the 500 pads), then loads every pad at
once, as an instance does when its relay subscription reconnects (each of its rooms repairs from
MongoDB), while a writer keeps storing a small batch every 10 ms, as the group commit does. Twice, in
the same run, on the same log:
- reference: one read of the log per pad (`LOAD_PADS` = 1: each load alone, as before loads were
  read together; SecantusDB runs them one after the other either way);
- grouped: loads waiting together share one read of the log, up to `LOAD_PADS` (100) pads each.
Prints the time until every pad is loaded, the reads of the log, and the writer's insert latency
meanwhile (every keystroke waits for such an insert before anyone sees it), and checks that both
ways load the same state for every pad.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bson import ObjectId
from pycrdt import Doc, Text
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hireflow import embedded
from hireflow.pad import store as pad_store
from hireflow.pad.store import Batch, PadStore, PendingUpdate
from hireflow.timeutil import utcnow
from tests.support.commands import Finds

WRITE_EVERY_S = 0.01


async def seed(store: PadStore, pads: list[ObjectId], batches: int, per_batch: int) -> None:
    docs: dict[ObjectId, Doc[Any]] = {pad: Doc() for pad in pads}
    seqs = dict.fromkeys(pads, 0)
    rng = random.Random(1)
    for _ in range(batches):
        entries = []
        for pad in rng.sample(pads, per_batch):
            doc = docs[pad]
            before = doc.get_state()
            doc.get("code", type=Text).insert(0, "x = 1\n")
            seqs[pad] += 1
            entries.append(PendingUpdate(pad, "seed", seqs[pad], doc.get_update(before)))
        await store.append(Batch(ObjectId(), utcnow(), entries))


async def writer(store: PadStore, pad: ObjectId, stop: asyncio.Event, waits: list[float]) -> None:
    """A batch every 10 ms (of a pad nobody loads), each insert's time recorded."""
    doc: Doc[Any] = Doc()
    seq = 0
    while not stop.is_set():
        before = doc.get_state()
        doc.get("code", type=Text).insert(0, "y")
        seq += 1
        started = time.perf_counter()
        await store.append(Batch(ObjectId(), utcnow(), [PendingUpdate(pad, "writer", seq, doc.get_update(before))]))
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(WRITE_EVERY_S)


def ms(values: list[float], q: float) -> float:
    return 1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0.0


async def measure(url: str, db_name: str, pads: list[ObjectId], load_pads: int) -> tuple[dict[str, float], list[bytes]]:
    reads = Finds("pad_updates")
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True, event_listeners=[reads])
    pad_store.LOAD_PADS = load_pads
    try:
        store = PadStore(client[db_name])
        stop, waits = asyncio.Event(), []
        writing = asyncio.create_task(writer(store, ObjectId(), stop, waits))
        await asyncio.sleep(0.5)
        waits.clear()
        started = time.perf_counter()
        loaded = await asyncio.gather(*(store.load(pad) for pad in pads))
        elapsed = time.perf_counter() - started
        stop.set()
        await writing
        figures = {
            "seconds": elapsed,
            "reads": reads.count,
            "inserts": len(waits),
            "p50": ms(waits, 50),
            "p99": ms(waits, 99),
            "max": 1000 * max(waits),
        }
        return figures, [stored.state for stored in loaded]
    finally:
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pads", type=int, default=500)
    parser.add_argument("--batches", type=int, default=1500, help="log documents before the loads")
    parser.add_argument("--per-batch", type=int, default=25, help="pads in each")
    args = parser.parse_args()
    port = embedded.free_port()
    server = embedded.start_mongo(port=port, storage_path=":memory:")
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, server)
        db_name = "pad_loads"
        url = f"mongodb://127.0.0.1:{port}/{db_name}?directConnection=true"
        pads = [ObjectId() for _ in range(args.pads)]
        seeding: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
        await seed(PadStore(seeding[db_name]), pads, args.batches, args.per_batch)
        await seeding.close()
        print(f"{args.pads} pads loaded at once from a log of {args.batches} batches of {args.per_batch} pads each")
        print("| way | seconds to load all | reads of the log | inserts meanwhile | insert p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|---|")
        results = {}
        for name, load_pads in (("reference: a read per pad", 1), ("grouped", pad_store.LOAD_PADS)):
            figures, states = await measure(url, db_name, pads, load_pads)
            results[name] = (figures, states)
            print(
                f"| {name} | {figures['seconds']:.2f} | {figures['reads']:.0f} | {figures['inserts']:.0f} | "
                f"{figures['p50']:.1f} | {figures['p99']:.1f} | {figures['max']:.1f} |",
                flush=True,
            )
        (ref, ref_states), (new, new_states) = results.values()
        same = ref_states == new_states
        print(f"speed-up {ref['seconds'] / new['seconds']:.1f}x; same state for every pad: {same}")
        if not same:
            sys.exit(1)
    finally:
        embedded.stop(server)


if __name__ == "__main__":
    asyncio.run(main())
