"""The domain-event seam: every change to a session is handed here, once, after it is stored.

The realtime hub publishes these to WebSocket subscribers and the workers react to them; until they
are plugged in, `LoggingSink` records them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

EventKind = Literal["session.created", "session.updated", "session.ended"]


@dataclass(frozen=True)
class SessionEvent:
    """A session changed. `session` is its public JSON, exactly as the REST API returns it."""

    kind: EventKind
    session: dict[str, Any]
    cause: str
    """What happened: `created`, `joined`, `ended`, or a `streamStatus` change."""
    ev: int = 0
    """The session's change counter after this change (0: unknown). Publishers drop an event whose `ev`
    is not newer than the last one published for the session, so a late or repeated announcement
    (the reconciler draining an outbox the request also published) never overwrites newer state."""

    @property
    def session_id(self) -> str:
        return str(self.session["_id"])


class EventSink(Protocol):
    async def publish(self, event: SessionEvent) -> bool:
        """Deliver the event; True once delivered, False when it could not be (it will be announced
        again from the session's outbox). Must not raise: the change it describes is already stored."""


class LoggingSink:
    async def publish(self, event: SessionEvent) -> bool:
        log.info("domain event %s (%s) session=%s", event.kind, event.cause, event.session_id)
        return True


class FanOut:
    """Hands each event to several sinks in order; one sink failing does not stop the others."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self._sinks = list(sinks)

    async def publish(self, event: SessionEvent) -> bool:
        """True when every sink delivered."""
        delivered = True
        for sink in self._sinks:
            try:
                delivered = await sink.publish(event) and delivered
            except Exception:
                log.exception("event sink %s failed for %s", type(sink).__name__, event.kind)
                delivered = False
        return delivered
