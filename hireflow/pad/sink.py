"""The domain-event sink that freezes a session's pad, on every instance, once the session ended."""

from __future__ import annotations

import asyncio

from hireflow.events import SessionEvent
from hireflow.pad import writer
from hireflow.pad.rooms import Pads


class PadSink:
    def __init__(self, pads: Pads) -> None:
        self._pads = pads

    async def publish(self, event: SessionEvent) -> bool:
        """Always delivered: the freeze notice waits in the pad relay's outbox until Redis takes it.

        Returns only once no writer trusts a read of the ended sessions made before this end was
        stored (writer.py), so that no edit sent after the end route answers is stored, even if the
        relay loses the notice. This sink is the last one: the others do not wait for it."""
        if event.kind == "session.ended":
            await self._pads.freeze(event.session_id)
            await asyncio.sleep(writer.FREEZE_CHECK_EVERY_S)
        return True
