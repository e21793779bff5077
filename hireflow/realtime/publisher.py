"""The realtime side of the domain-event seam: every session change is published to its topics.

A change is stored before it is published, so a publish can fail (Redis unreachable) after the
change happened. Its topic then no longer tells the whole story: connected subscribers would never
learn of the change, and resuming clients would be replayed a log with a hole in it. Such a topic is
remembered and, as soon as Redis answers again, restarted (`Bus.restart`: a new epoch), which resets
every subscriber of it on every instance to a fresh snapshot, the change included. Cache version
bumps that failed with it are retried first, so that no instance takes that snapshot from its cache.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from hireflow.cache import CacheVersions
from hireflow.events import SessionEvent
from hireflow.observability import Metrics
from hireflow.realtime import protocol
from hireflow.realtime.bus import Bus
from hireflow.services.access import public_view

log = logging.getLogger(__name__)


class RealtimeSink:
    """Publishes to `session:<id>` always, and to `lobby` while a public session is active (and its end).

    What is published (and retained in Redis) is the session's public view: no emails, no invite
    code (services/access.py), so that one serialization serves every subscriber."""

    def __init__(self, bus: Bus, versions: CacheVersions, metrics: Metrics | None = None) -> None:
        self._bus = bus
        self._versions = versions
        self._metrics = metrics
        self._unpublished: set[str] = set()
        """Topics with an event that could not be published, to restart once Redis answers."""

    async def publish(self, event: SessionEvent) -> bool:
        """True when every topic got the event (or already had a newer one)."""
        body = protocol.event_body(event.kind, public_view(event.session))
        topics = [protocol.session_topic(event.session_id)]
        listed = event.session.get("visibility") != "private"
        if listed and (event.kind == "session.ended" or event.session.get("status") == "active"):
            topics.insert(0, protocol.LOBBY)
        return await self.publish_body(event.kind, topics, body, (event.session_id, event.ev))

    async def publish_body(
        self, kind: str, topics: list[str], body: bytes, gate: tuple[str, int] | None = None
    ) -> bool:
        """Publish an event body (`{"event": kind, …}`) to each topic in turn, with the same repair as
        session events (code runs use it directly, without a gate). Never raises for Redis."""
        delivered = True
        for topic in topics:
            try:
                if topic in self._unpublished:
                    await self._restart(topic)  # before anything newer is published to it
                await self._bus.publish(topic, body, gate)
            except (RedisError, OSError) as exc:
                delivered = False
                self._unpublished.add(topic)
                if self._metrics is not None:
                    self._metrics.deferred_writes.labels("publish").inc()
                log.warning("could not publish %s to %s; its subscribers will be reset: %r", kind, topic, exc)
        return delivered

    async def _restart(self, topic: str) -> None:
        await self._versions.flush()
        await self._bus.restart(topic)
        self._unpublished.discard(topic)
        log.info("restarted realtime topic %s after a failed publish", topic)

    async def repair(self) -> None:
        """Retry failed cache version bumps, then restart every topic whose publish failed (raises at
        the first Redis error)."""
        await self._versions.flush()
        for topic in list(self._unpublished):
            await self._restart(topic)

    async def repair_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.repair()
            except (RedisError, OSError) as exc:
                log.debug("realtime topics not repaired yet: %r", exc)
