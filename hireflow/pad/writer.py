"""Group commit: the updates that arrive while one batch is being stored go together in the next.

One writer per process, for every pad: a burst of keystrokes on hundreds of pads costs one MongoDB round
trip, not one each, and batches start at least `MIN_BATCH_INTERVAL_S` apart. A batch that fails (MongoDB
restarting) is retried, in order, until it is stored; meanwhile new updates queue behind it and nobody
sees any of them.

Before storing a batch, the writer knows which sessions ended from a read of MongoDB that started at
most `FREEZE_CHECK_EVERY_S` before the batch did: it asks again (one index range read on `endedAt`,
with `CLOCK_SKEW_S` of overlap for the clocks of the instances that wrote it) when its last read is
older. Those pads are frozen here from then on, and their updates are refused, not stored, whatever this
instance heard. The check is made once per batch, before the first attempt, so a retried batch never
changes its mind about what it stores. So every update that reaches this writer `FREEZE_CHECK_EVERY_S`
or more after the end is stored is refused; one that races the end more closely may be stored, and is
then seen by everyone like any other. The end route answers only once `FREEZE_CHECK_EVERY_S` has passed
since it stored the end (sink.py): no edit sent after its answer is stored, even when the relay loses
the freeze. One read per batch cost about 4 % of the web processes' CPU and 2.5 ms of every batch at
500 pads (bench/pad.py); one per 50 ms costs a fifth of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TypeVar

from bson import ObjectId
from pycrdt import merge_updates
from pymongo.errors import PyMongoError

from hireflow.pad.room import PadSocket, Room
from hireflow.pad.store import Batch, PadStore, PendingUpdate
from hireflow.timeutil import utcnow

log = logging.getLogger(__name__)

R = TypeVar("R")

CLOCK_SKEW_S = 60.0
"""Overlap of consecutive "which sessions ended" reads: `endedAt` comes from the ending instance's clock."""
ENDED_REMEMBERED = 100_000
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
MIN_BATCH_INTERVAL_S = 0.01
"""Batches start at least this far apart (unless one is full): under moderate load the writer otherwise
stores a batch of one or two updates as fast as MongoDB answers, paying two round trips and a relay
message each time. Measured at 100 pads: web + DB CPU 16 s instead of 28 s over 20 s, p50 +3 ms."""
FREEZE_CHECK_EVERY_S = 0.05
"""A batch trusts a "which sessions ended" read that started at most this long before it (see above)."""


@dataclass(frozen=True)
class Item:
    room: Room
    origin: PadSocket | None
    pending: PendingUpdate


StoredHandler = Callable[[list[Item], list[PendingUpdate]], Awaitable[None]]
"""Called with the stored items and, as stored, one merged entry per pad life (`_grouped`)."""
RefusedHandler = Callable[[list[Item]], None]
AppendedHandler = Callable[[Batch, int], None]
"""Called with a stored batch and the number of updates in it."""
EndedHandler = Callable[[set[ObjectId]], None]


class UpdateWriter:
    def __init__(
        self,
        store: PadStore,
        on_stored: StoredHandler,
        on_refused: RefusedHandler,
        on_appended: AppendedHandler,
        on_ended: EndedHandler,
        *,
        max_batch: int = 2000,
    ) -> None:
        self._store = store
        self._on_stored = on_stored
        self._on_refused = on_refused
        self._on_appended = on_appended
        self._on_ended = on_ended
        self._checked_at = utcnow()
        self._check_started = -FREEZE_CHECK_EVERY_S
        """Loop time at which the latest "which sessions ended" read started."""
        self.ended: dict[ObjectId, None] = {}
        """Sessions seen ended by a check (the latest `ENDED_REMEMBERED`), for pads loaded later."""
        self._max_batch = max_batch
        self._queue: list[Item] = []
        self._task: asyncio.Task[None] | None = None
        self._last_start = 0.0
        self.stored_total = 0
        self.batches_total = 0
        self.queued_bytes = 0

    def submit(self, room: Room, origin: PadSocket | None, update: bytes) -> None:
        room.next_seq += 1
        room.inflight += 1
        room.pending_bytes += len(update)
        self._queue.append(Item(room, origin, PendingUpdate(room.pad, room.src, room.next_seq, update)))
        self.queued_bytes += len(update)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            wait_s = self._last_start + MIN_BATCH_INTERVAL_S - loop.time()
            if wait_s > 0 and len(self._queue) < self._max_batch:
                await asyncio.sleep(wait_s)
            self._last_start = loop.time()
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            frozen = await self._retrying("checking", len(batch), partial(self._frozen, batch, self._last_start))
            stored = [item for item in batch if item.room.pad not in frozen]
            grouped = _grouped(stored)
            if stored:
                stored_batch = Batch(ObjectId(), utcnow(), grouped)  # one id for every attempt: retries are no-ops
                await self._retrying("storing", len(stored), partial(self._store.append, stored_batch))
                self._on_appended(stored_batch, len(stored))
            self.stored_total += len(stored)
            self.batches_total += 1
            self.queued_bytes -= sum(len(item.pending.update) for item in batch)
            for item in batch:
                item.room.inflight -= 1
                item.room.pending_bytes -= len(item.pending.update)
            if len(stored) < len(batch):
                self._on_refused([item for item in batch if item.room.pad in frozen])
            try:
                if stored:
                    await self._on_stored(stored, grouped)
            except Exception:
                log.exception("pad writer: handling a stored batch failed")

    async def _frozen(self, batch: list[Item], batch_started: float) -> set[ObjectId]:
        if batch_started - self._check_started >= FREEZE_CHECK_EVERY_S:
            await self._check_ended()
        return {item.room.pad for item in batch if item.room.frozen or item.room.pad in self.ended}

    async def _check_ended(self) -> None:
        """Read which sessions ended since the previous read; remember them and freeze their pads."""
        started, now = asyncio.get_running_loop().time(), utcnow()
        ended = await self._store.ended_since(self._checked_at - timedelta(seconds=CLOCK_SKEW_S))
        self._checked_at, self._check_started = now, started
        for pad in ended:
            self.ended[pad] = None
        while len(self.ended) > ENDED_REMEMBERED:
            del self.ended[next(iter(self.ended))]
        if ended:
            self._on_ended(ended)

    async def _retrying(self, what: str, count: int, call: Callable[[], Awaitable[R]]) -> R:
        """`call()` until MongoDB answers (backing off)."""
        delay_s = RETRY_FIRST_S
        while True:
            try:
                return await call()
            except PyMongoError as exc:
                log.warning("pad writer: %s %d updates failed, retrying: %r", what, count, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_MAX_S)

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for what is queued to be stored, e.g. on shutdown."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _grouped(batch: list[Item]) -> list[PendingUpdate]:
    """One entry per pad life in the batch: its updates merged (pycrdt), under the range of sequence
    numbers they had (the batch is one stored document for all pads: store.py)."""
    by_src: dict[str, list[PendingUpdate]] = {}
    for item in batch:
        by_src.setdefault(item.pending.src, []).append(item.pending)
    out = []
    for updates in by_src.values():
        if len(updates) == 1:
            out.append(updates[0])
        else:
            merged = merge_updates(*(u.update for u in updates))
            out.append(PendingUpdate(updates[0].pad, updates[0].src, updates[-1].seq, merged, first=updates[0].seq))
    return out
