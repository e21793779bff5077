"""The realtime side of the domain-event seam: every session change is published to its topics."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from hireflow.events import SessionEvent
from hireflow.realtime import protocol
from hireflow.realtime.bus import Bus

log = logging.getLogger(__name__)


class RealtimeSink:
    """Publishes to `session:<id>` always, and to `lobby` while the session is active (and its end)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(self, event: SessionEvent) -> None:
        body = protocol.event_body(event.kind, event.session)
        topics = [protocol.session_topic(event.session_id)]
        if event.kind == "session.ended" or event.session.get("status") == "active":
            topics.insert(0, protocol.LOBBY)
        for topic in topics:
            try:
                await self._bus.publish(topic, body)
            except (RedisError, OSError) as exc:
                # The change is stored; clients that miss it get it from their next snapshot.
                log.warning("could not publish %s to %s: %r", event.kind, topic, exc)
