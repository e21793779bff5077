"""Checkpoints: this instance's stored batches folded into the pads' snapshots, in the background.

The writer reports each batch it stored and how many updates it holds; once they add up to `every`
updates, every batch written so far is folded (`PadStore.fold`, `FOLD_CHUNK` batches at a time) and
deleted, so a pad's load reads at most about `every` updates per instance. Counted in updates, not
batches: under light load a batch holds one or two updates, and folding every few hundred of those
rewrote every open pad's snapshot every second or so for little.
Every `ORPHAN_AFTER_S / 2` it also folds batches older than `ORPHAN_AFTER_S` that nobody folded: those of
an instance that died, and the last few of a quiet one. Never on the write path: a slow checkpoint
delays no keystroke, it only lets the log grow meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bson import ObjectId
from pymongo.errors import PyMongoError

from hireflow.pad.store import ORPHAN_AFTER_S, PadStore

log = logging.getLogger(__name__)

RETRY_S = 1.0
FOLD_CHUNK = 500
"""Batches given to one `PadStore.fold` at most (which reads and writes them in smaller operations)."""


class Checkpointer:
    def __init__(self, store: PadStore, *, every: int) -> None:
        self._store = store
        self._every = every
        self._written: list[ObjectId] = []
        self._written_updates = 0
        self._wake = asyncio.Event()
        self._stopped = False
        self.folded_total = 0

    def stop(self) -> None:
        """End `run_forever` after what it is doing (a cancellation inside a MongoDB call may come
        out as a connection error, which would be retried)."""
        self._stopped = True
        self._wake.set()

    def wrote(self, batch_id: ObjectId, updates: int) -> None:
        self._written.append(batch_id)
        self._written_updates += updates
        if self._written_updates >= self._every:
            self._wake.set()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_orphans = loop.time() + ORPHAN_AFTER_S / 2
        while not self._stopped:
            with contextlib.suppress(TimeoutError):  # not asyncio.wait_for: it can swallow a cancellation
                async with asyncio.timeout(max(0.0, next_orphans - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            try:
                if self._written_updates >= self._every:
                    while self._written:  # also what is written meanwhile (a failure resumes here)
                        chosen = self._written[:FOLD_CHUNK]
                        self.folded_total += await self._store.fold(chosen)
                        del self._written[: len(chosen)]
                    self._written_updates = 0
                if loop.time() >= next_orphans:
                    next_orphans = loop.time() + ORPHAN_AFTER_S / 2
                    while orphans := await self._store.orphans(FOLD_CHUNK):
                        self.folded_total += await self._store.fold(orphans)
                        if len(orphans) < FOLD_CHUNK:
                            break
            except (PyMongoError, RuntimeError) as exc:
                log.warning("pad checkpoint failed, retrying: %r", exc)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
