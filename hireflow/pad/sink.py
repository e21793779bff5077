"""The domain-event sink that freezes a session's pad, on every instance, once the session ended."""

from __future__ import annotations

from hireflow.events import SessionEvent
from hireflow.pad.rooms import Pads


class PadSink:
    def __init__(self, pads: Pads) -> None:
        self._pads = pads

    async def publish(self, event: SessionEvent) -> bool:
        """Always delivered: the freeze notice waits in the pad relay's outbox until Redis takes it."""
        if event.kind == "session.ended":
            await self._pads.freeze(event.session_id)
        return True
