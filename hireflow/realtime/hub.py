"""The hub: which connection listens to which topic, in this process; bus events fanned out to them.

The bus listener hands every event here in order. For each topic with local subscribers the hub
remembers the last sequence number it dispatched; a jump means the pub/sub connection lost
messages, and the gap is filled from the topic's retained log before going on (or, if the log no
longer has it, every subscriber of the topic is reset). An event is serialized once, here, and the
same bytes go to every subscriber: handed at once to the transports of the idle ones, from the
loop thread, queued for the others; nothing here awaits a socket. Under uvloop a transport write is
a C call that queues the bytes, and the loop sends them all at the end of the iteration, so one
event to 10,000 sockets costs ~10,000 `send`s and little Python; more cores are used by more web
processes (`WEB_CONCURRENCY`), each with its share of the sockets, not by threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from hireflow.cache import CacheVersions
from hireflow.errors import NotFound
from hireflow.realtime import protocol
from hireflow.realtime.bus import RESTART_TOPIC, Bus, BusEvent, Listener
from hireflow.realtime.connection import Connection, Subscription, Sync
from hireflow.services.access import can_read, public_view
from hireflow.services.sessions import SessionService

log = logging.getLogger(__name__)

PadPresenceReader = Callable[[str], Awaitable[dict[str, bool]]]
"""Who has a session's pad open (`{"host": …, "participant": …}`), for its topic's snapshot."""


@dataclass
class HubStats:
    events_received: int = 0
    events_serialized: int = 0
    events_delivered: int = 0
    resets_slow: int = 0
    closed_slow: int = 0


class Hub:
    def __init__(
        self,
        bus: Bus,
        listener: Listener,
        sessions: SessionService,
        versions: CacheVersions,
        *,
        pad_presence: PadPresenceReader | None = None,
    ) -> None:
        self.bus = bus
        self._pad_presence = pad_presence
        self.listener = listener
        self._sessions = sessions
        self._versions = versions
        self._topics: dict[str, set[Connection]] = defaultdict(set)
        self._last: dict[str, tuple[str, int]] = {}
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self.stats = HubStats()

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())

    # --- connections ----------------------------------------------------------------------------

    def user_connections(self) -> list[tuple[str, Connection]]:
        return [(user_id, conn) for user_id, conns in self._by_user.items() for conn in conns]

    def connections(self) -> Iterator[Connection]:
        """Every connection of this process (do not attach or detach while iterating)."""
        for conns in self._by_user.values():
            yield from conns

    def attach(self, conn: Connection) -> None:
        self._by_user[conn.user_id].add(conn)

    def detach(self, conn: Connection) -> None:
        for topic in list(conn.subs):
            self.unsubscribe(conn, topic)
        users = self._by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._by_user[conn.user_id]

    def subscribe(
        self, conn: Connection, topic: str, epoch: str | None, since: int | None, invite_code: str | None = None
    ) -> None:
        if topic in conn.subs:
            self.unsubscribe(conn, topic)
        self._topics[topic].add(conn)
        conn.subscribe(Subscription(topic, invite_code=invite_code), epoch, since)

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        conn.unsubscribe(topic)
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self._topics[topic]
                self._last.pop(topic, None)

    def close_user(self, user_id: str, code: int, reason: str) -> int:
        conns = list(self._by_user.get(user_id, ()))
        for conn in conns:
            conn.close_soon(code, reason)
        return len(conns)

    async def close_all(self, code: int, reason: str) -> None:
        conns = [c for users in self._by_user.values() for c in users]
        for conn in conns:
            conn.close_soon(code, reason)
        await asyncio.gather(*(c.closing() for c in conns), return_exceptions=True)

    # --- the bus --------------------------------------------------------------------------------

    async def on_event(self, event: BusEvent) -> None:
        self.stats.events_received += 1
        if event.topic not in self._topics:
            return
        after = self._position(event.topic, event.epoch)
        if after is not None and event.seq > after + 1:
            await self._catch_up(event.topic, event.epoch, after, event.seq - 1)
        self._dispatch(event)

    def _position(self, topic: str, epoch: str) -> int | None:
        """The last event of `topic` this process is sure every live subscriber has been handed."""
        last = self._last.get(topic)
        if last is not None and last[0] == epoch:
            return last[1]
        live = [c.subs[topic] for c in self._topics.get(topic, ()) if topic in c.subs and c.subs[topic].live]
        seqs = [sub.last_seq for sub in live if sub.epoch == epoch]
        return min(seqs) if seqs else None

    async def _catch_up(self, topic: str, epoch: str, after: int, upto: int) -> None:
        """Dispatch the retained events `after+1 … upto`, or reset the topic's subscribers if they are gone."""
        missed = await self.bus.replay(topic, after, upto)
        if missed is None:
            self._resync_topic(topic, "retention")
            return
        for seq, body in missed:
            self._dispatch(BusEvent(epoch, topic, seq, body))

    def _dispatch(self, event: BusEvent) -> None:
        subscribers = self._topics.get(event.topic)
        if not subscribers:
            return
        self._last[event.topic] = (event.epoch, event.seq)
        frame = protocol.event_frame(event.topic, event.epoch, event.seq, event.body)
        wire = protocol.wire_text_frame(frame)
        self.stats.events_serialized += 1
        self.stats.events_delivered += len(subscribers)
        topic, epoch, seq = event.topic, event.epoch, event.seq
        # A copy: a delivery may close a connection, and nothing may change the set while it is walked.
        for conn in tuple(subscribers):
            sub = conn.subs.get(topic)
            if sub is not None:
                conn.deliver(sub, epoch, seq, frame, wire)

    def _resync_topic(self, topic: str, reason: protocol.ResetReason) -> None:
        for conn in list(self._topics.get(topic, ())):
            sub = conn.subs.get(topic)
            if sub is not None:
                conn.resync(sub, reason)

    async def on_reconnect(self) -> None:
        """After the pub/sub connection was lost: replay what every subscribed topic missed meanwhile."""
        for topic in list(self._topics):
            epoch, seq = await self.bus.meta(topic)
            after = self._position(topic, epoch)
            if after is None:
                self._resync_topic(topic, "epoch")  # Redis lost the topic: its counter started over
            elif seq > after:
                await self._catch_up(topic, epoch, after, seq)

    async def on_control(self, message: bytes) -> None:
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if data.get("type") == "disconnect_user" and isinstance(data.get("userId"), str):
            closed = self.close_user(data["userId"], protocol.CLOSE_AUTH, "user deleted")
            if closed:
                log.info("closed %d connection(s) of deleted user %s", closed, data["userId"])
        elif data.get("type") == RESTART_TOPIC and isinstance(data.get("topic"), str):
            self._last.pop(data["topic"], None)
            self._resync_topic(data["topic"], "epoch")

    async def disconnect_user(self, user_id: str) -> None:
        """Close every connection of the user, on every instance (within the bus's latency)."""
        await self.bus.control(orjson.dumps({"type": "disconnect_user", "userId": user_id}))

    # --- snapshots and resume (run by the connection's writer) ---------------------------------

    async def state(self, topic: str) -> Any:
        """A topic's snapshot as every subscriber sees it: public views (services/access.py), like events."""
        versions = await self._versions.read()
        if topic == protocol.LOBBY:
            return [public_view(session) for session in await self._sessions.active(versions)]
        return public_view(await self._sessions.get(topic[len(protocol.SESSION_PREFIX) :], versions))

    async def _pad_state(self, topic: str) -> dict[str, bool] | None:
        """Read after `bus.meta`, like the session: a later `pad.presence` event is never older than it."""
        if self._pad_presence is None or topic == protocol.LOBBY:
            return None
        return await self._pad_presence(topic[len(protocol.SESSION_PREFIX) :])

    async def _readable(self, conn: Connection, sub: Subscription) -> bool:
        """Whether the subscriber may follow the topic. Checked before anything touches Redis, so a
        subscribe to a session that does not exist (or that the caller may not see) creates nothing:
        completed sessions are for their members, private ones for members and holders of the code."""
        if sub.topic == protocol.LOBBY:
            return True
        versions = await self._versions.read()
        try:
            session = await self._sessions.get(sub.topic[len(protocol.SESSION_PREFIX) :], versions)
        except NotFound:
            return False
        return can_read(session, conn.user_id, sub.invite_code)

    async def sync(self, conn: Connection, job: Sync) -> None:
        """Bring one subscription up to date: replay from `since`, else (reset +) snapshot; then go live."""
        sub, reason = job.sub, job.reason
        if not sub.authorized:
            if not await self._readable(conn, sub):
                await conn.write(protocol.error_frame("not_found", "Session not found"))
                self.unsubscribe(conn, sub.topic)
                return
            sub.authorized = True
        while True:
            sub.pending_lost = False
            epoch, seq = await self.bus.meta(sub.topic)
            replayed = None
            if reason is None and job.epoch is not None and job.since is not None:
                if job.epoch != epoch:
                    reason = "epoch"
                elif job.since > seq:
                    reason = "since"  # past the end: the client holds events this topic never had
                else:
                    replayed = await self.bus.replay(sub.topic, job.since, seq)
                    if replayed is None:
                        reason = "retention"
            if replayed is not None:
                for s, body in replayed:
                    await conn.write(protocol.event_frame(sub.topic, epoch, s, body))
            else:
                try:
                    state = await self.state(sub.topic)
                    pad = await self._pad_state(sub.topic)
                except NotFound:
                    await conn.write(protocol.error_frame("not_found", "Session not found"))
                    self.unsubscribe(conn, sub.topic)
                    return
                if reason is not None:
                    await conn.write(protocol.reset_frame(sub.topic, reason))
                await conn.write(protocol.snapshot_frame(sub.topic, epoch, seq, state, pad))
            sub.epoch, sub.last_seq = epoch, seq
            if not sub.pending_lost:
                break
            reason = "slow"
        pending, sub.pending = sub.pending, []
        sub.live = True
        for ev_epoch, ev_seq, frame in pending:
            conn.deliver(sub, ev_epoch, ev_seq, frame)
