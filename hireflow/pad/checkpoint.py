"""Checkpoints: this instance's stored batches folded into the pads' snapshots, in the background.

The writer reports each batch it stored; every `every` of them, the oldest `every` are folded
(`PadStore.fold`) and deleted, so a pad's load reads at most about `every` batches per instance.
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


class Checkpointer:
    def __init__(self, store: PadStore, *, every: int) -> None:
        self._store = store
        self._every = every
        self._written: list[ObjectId] = []
        self._wake = asyncio.Event()
        self._stopped = False
        self.folded_total = 0

    def stop(self) -> None:
        """End `run_forever` after what it is doing (a cancellation inside a MongoDB call may come
        out as a connection error, which would be retried)."""
        self._stopped = True
        self._wake.set()

    def wrote(self, batch_id: ObjectId) -> None:
        self._written.append(batch_id)
        if len(self._written) >= self._every:
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
                while len(self._written) >= self._every:
                    chosen = self._written[: self._every]
                    self.folded_total += await self._store.fold(chosen)
                    del self._written[: len(chosen)]
                if loop.time() >= next_orphans:
                    next_orphans = loop.time() + ORPHAN_AFTER_S / 2
                    orphans = await self._store.orphans(self._every)
                    if orphans:
                        self.folded_total += await self._store.fold(orphans)
            except (PyMongoError, RuntimeError) as exc:
                log.warning("pad checkpoint failed, retrying: %r", exc)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
