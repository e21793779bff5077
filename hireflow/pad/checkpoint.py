"""Checkpoints: this instance's stored batches compacted, and old log documents folded into the pads'
snapshots, in the background (see store.py for the two steps).

The writer reports each batch it stored (as it stored it) and how many updates it holds. Once they add
up to about `every` updates, the batches written so far are compacted from memory in one checkpoint
(`PadStore.compact_written`: nothing is read back, every pad life's entries become one, in a handful of
documents) and deleted, so the log holds at most about twice `every` updates per instance in batches.
- Counted in updates, not batches: under light load a batch holds one or two updates, and compacting
  every few hundred of those would run a checkpoint every second or so for little.
- What is written while a checkpoint runs waits for the next `every` updates. Taking it at once kept a
  busy instance checkpointing without a pause, each time for a handful of batches.
- "About": each checkpoint waits for a random 50-100 % of `every`, so that instances under the same
  load, which reach it together, drift apart instead of checkpointing at the same moment.

Every `fold_after_s / 2` it also folds log documents older than `fold_after_s` into the snapshots,
read back from the log: the compacted documents of every instance, and batches nobody compacted (those
of an instance that died, and the last few of a quiet one, which it then stops keeping in memory).
Only while it holds the fold lease (`PadStore.claim_fold`): when another instance has it, this
sweep folds nothing, and the next one, `fold_after_s / 2` later, looks again.
Never on the write path: a slow checkpoint delays no keystroke, it only lets the log grow meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from datetime import timedelta

from bson import ObjectId
from pymongo.errors import PyMongoError

from hireflow.pad.store import Batch, PadStore
from hireflow.timeutil import utcnow

log = logging.getLogger(__name__)

RETRY_S = 1.0
FOLD_CHUNK = 200
"""Old log documents given to one `PadStore.fold` at most (which reads and writes them in smaller
operations): a few MB when they are compacted ones."""
JITTER = 0.5


class Checkpointer:
    def __init__(self, store: PadStore, *, every: int) -> None:
        self._store = store
        self._every = every
        self._due = self._next_due()
        self._written: list[tuple[Batch, int]] = []
        """Batches stored and not folded yet, in order, with the number of updates each holds."""
        self._written_updates = 0
        self._wake = asyncio.Event()
        self._stopped = False
        self.compacted_total = 0
        """Batches compacted from memory."""
        self.folded_total = 0
        """Log documents folded into snapshots."""
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{ObjectId()}"
        """This checkpointer's name on the fold lease (host and process first, for whoever looks)."""

    def stop(self) -> None:
        """End `run_forever` after what it is doing (a cancellation inside a MongoDB call may come
        out as a connection error, which would be retried)."""
        self._stopped = True
        self._wake.set()

    def wrote(self, batch: Batch, updates: int) -> None:
        self._written.append((batch, updates))
        self._written_updates += updates
        if self._written_updates >= self._due:
            self._wake.set()

    def _next_due(self) -> int:
        return max(1, round(self._every * random.uniform(1 - JITTER, 1)))

    async def _compact_written(self) -> None:
        """Compact the batches written so far (not those written meanwhile); a failure resumes here."""
        chosen = list(self._written)
        updates = sum(count for _batch, count in chosen)
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.compacted_total += await self._store.compact_written([batch for batch, _count in chosen])
        log.info(
            "pad checkpoint: compacted %d batches (%d updates) in %.2f s", len(chosen), updates, loop.time() - started
        )
        del self._written[: len(chosen)]
        self._written_updates -= updates
        self._due = self._next_due()

    def _forget_orphans(self) -> None:
        """Stop keeping batches the sweep folds (from the log) from now on."""
        cutoff = utcnow() - timedelta(seconds=self._store.fold_after_s)
        old = 0
        while old < len(self._written) and self._written[old][0].at < cutoff:
            self._written_updates -= self._written[old][1]
            old += 1
        del self._written[:old]

    async def fold_orphans(self) -> None:
        """Fold every log document older than `fold_after_s`, `FOLD_CHUNK` at a time, if this
        instance gets the fold lease (renewed before each chunk, given back at the end; after a
        failure it runs out by itself)."""
        loop = asyncio.get_running_loop()
        started, folded = loop.time(), 0
        while await self._store.claim_fold(self._holder):
            orphans = await self._store.orphans(FOLD_CHUNK)
            count = await self._store.fold(orphans)
            self.folded_total += count
            folded += count
            if len(orphans) < FOLD_CHUNK:
                await self._store.release_fold(self._holder)
                break
        if folded:
            log.info("pad checkpoint: folded %d log documents in %.2f s", folded, loop.time() - started)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_orphans = loop.time() + self._store.fold_after_s / 2
        while not self._stopped:
            with contextlib.suppress(TimeoutError):  # not asyncio.wait_for: it can swallow a cancellation
                async with asyncio.timeout(max(0.0, next_orphans - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            try:
                if self._written_updates >= self._due:
                    await self._compact_written()
                if loop.time() >= next_orphans:
                    next_orphans = loop.time() + self._store.fold_after_s / 2
                    self._forget_orphans()
                    await self.fold_orphans()
            except (PyMongoError, RuntimeError) as exc:
                log.warning("pad checkpoint failed, retrying: %r", exc)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
