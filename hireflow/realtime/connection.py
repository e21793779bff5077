"""One WebSocket: its subscriptions, one bounded outbound queue and the task that writes it.

Events are handed over already serialized, as one `bytes` shared by every subscriber. The fast
path: when nothing is queued or being sent and little is buffered, the event's prebuilt wire frame
goes to the transport at once, on the loop thread (`deliver`); under uvloop that is a C call that
queues the bytes, and uvloop sends every socket's bytes at the end of the loop iteration. A fan-out
to 10,000 idle sockets thus wakes no task and touches no socket behind asyncio's back.
Otherwise it is queued and the writer task sends it, waiting for the socket to drain. A subscription
that falls behind is conflated: its queued events are dropped and the writer sends `reset` + a fresh
snapshot instead. A socket that cannot take a frame within `ws_send_timeout_s`, or that needs
conflating again and again, is closed with 1013.

An idle connection owns no task and no queue: the writer task exists only while there is queued
work (it ends when the queue is empty), and the queue is made when something is queued; the same
holds for what the client sends (`received`: handled in order by a task that exists while there are
messages). With the socket itself a `Link` (realtime/link.py), an idle dashboard is this object, its
`Link`, its subscription and the event loop's transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hireflow.realtime import protocol
from hireflow.realtime.link import Link
from hireflow.realtime.protocol import ResetReason

if TYPE_CHECKING:
    from hireflow.realtime.hub import Hub

log = logging.getLogger(__name__)

MAX_SLOW_RESETS = 3
FAST_PATH_MAX_BUFFERED = 16 * 1024
SLOW_RESET_WINDOW_S = 60.0
CLOSE_TIMEOUT_S = 2.0
INBOX_MAX = 32
"""Client messages waiting to be handled before the socket stops being read (TCP back-pressure)."""
CLOSE_INTERNAL_ERROR = 1011


def takes_write_now(transport: asyncio.Transport | None) -> bool:
    """Whether a frame may go straight to this transport (the fast path): open, little buffered. The
    caller also makes sure nothing of its own is queued or being sent ahead of the frame."""
    return (
        transport is not None
        and not transport.is_closing()
        and transport.get_write_buffer_size() < FAST_PATH_MAX_BUFFERED
    )


class Handler(Protocol):
    """What the endpoint does with a connection's messages (one object for all connections)."""

    async def message(self, conn: Connection, text: str | None) -> None:
        """One client message, in order: its text, or None for a binary one."""

    def gone(self, conn: Connection) -> None:
        """The socket is closed: forget the connection (called once)."""


@dataclass(slots=True)
class Subscription:
    topic: str
    epoch: str = ""
    last_seq: int = 0
    live: bool = False
    """False while the writer builds its snapshot or replay; events wait in `pending` meanwhile."""
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)
    pending_lost: bool = False
    invite_code: str | None = None
    """The code sent with the subscribe (private sessions); checked once, before the first snapshot."""
    authorized: bool = False


@dataclass(frozen=True)
class Close:
    """Writer work: close the socket after the frames queued before it."""

    code: int
    reason: str


@dataclass(frozen=True)
class Sync:
    """Writer work: bring a subscription up to date (resume from `since`, or reset + snapshot)."""

    sub: Subscription
    epoch: str | None = None
    since: int | None = None
    reason: ResetReason | None = None


class Connection:
    # Slots and lazily made objects: 10,000 idle connections should cost as little memory as possible.
    __slots__ = (
        "_closer",
        "_handler",
        "_inbox",
        "_queue",
        "_queue_max",
        "_reader",
        "_send_timeout_s",
        "_sending",
        "_slow_resets",
        "_writer",
        "closed",
        "expires_at",
        "hub",
        "subs",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        ws: Link,
        hub: Hub,
        handler: Handler,
        *,
        user_id: str,
        expires_at: float,
        queue_max: int,
        send_timeout_s: float,
    ) -> None:
        self.ws = ws
        self.hub = hub
        self._handler = handler
        self._inbox: deque[str | None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.user_id = user_id
        self.expires_at = expires_at
        self.subs: dict[str, Subscription] = {}
        self._queue: deque[tuple[str | None, bytes] | Sync | Close] | None = None
        """Work for the writer task, in order; None while there is none (most connections, most of the time)."""
        self._queue_max = queue_max
        self._send_timeout_s = send_timeout_s
        self._slow_resets: list[float] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._sending = False
        self.closed = False
        # Kept: the link's `transport` turns None when the socket closes; this one then says closing.
        self.transport = ws.transport

    # --- called by the link --------------------------------------------------------------------

    def received(self, text: str | None) -> None:
        """A client message: handled in order by a reader task that exists while there are some."""
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(text)
        if len(self._inbox) >= INBOX_MAX and self.transport is not None:
            self.transport.pause_reading()
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_loop())

    def lost(self) -> None:
        """The socket is gone (called once): the endpoint forgets it, and its tasks stop."""
        self.closed = True
        self._handler.gone(self)
        for task in (self._reader, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def _read_loop(self) -> None:
        try:
            while self._inbox:
                text = self._inbox.popleft()
                if len(self._inbox) == INBOX_MAX // 2 and self.transport is not None and not self.closed:
                    self.transport.resume_reading()
                await self._handler.message(self, text)
            self._inbox = None
        except Exception:
            log.exception("websocket message handling failed")
            self.close_soon(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None

    # --- called from the hub and the reader (never await the socket) --------------------------

    def send(self, frame: bytes) -> None:
        """Queue a control frame (ready, pong, error)."""
        if self._queue is not None and len(self._queue) >= 2 * self._queue_max:
            self.close_soon(protocol.CLOSE_TRY_AGAIN_LATER, "too slow")
            return
        self._enqueue((None, frame))

    def subscribe(self, sub: Subscription, epoch: str | None, since: int | None) -> None:
        self.subs[sub.topic] = sub
        self._enqueue(Sync(sub, epoch, since))

    def unsubscribe(self, topic: str) -> Subscription | None:
        sub = self.subs.pop(topic, None)
        if sub is not None:
            self._purge(topic)
        return sub

    def deliver(self, sub: Subscription, epoch: str, seq: int, frame: bytes, wire: bytes | None = None) -> None:
        """One event for one subscription, in order; duplicates are dropped, gaps and backlog resync.
        With `wire` (the prebuilt frame) and little buffered, it is written to the transport at once."""
        if self.closed or self.ws.closed:
            return  # nothing may follow a close frame
        if not sub.live:
            if len(sub.pending) >= self._queue_max:
                sub.pending.clear()
                sub.pending_lost = True
            else:
                sub.pending.append((epoch, seq, frame))
            return
        if epoch != sub.epoch or seq != sub.last_seq + 1:
            self._out_of_order(sub, epoch, seq)
            return
        transport = self.transport
        if wire is not None and not (self._queue or self._sending) and takes_write_now(transport):
            assert transport is not None
            transport.write(wire)
            sub.last_seq = seq
            return
        if self._queue is not None and len(self._queue) >= self._queue_max:
            self._slow(sub)
            return
        sub.last_seq = seq
        self._enqueue((sub.topic, frame))

    def _out_of_order(self, sub: Subscription, epoch: str, seq: int) -> None:
        if epoch != sub.epoch:
            self.resync(sub, "epoch")
        elif seq > sub.last_seq + 1:
            self.resync(sub, "retention")
        # else: a duplicate, already delivered

    def resync(self, sub: Subscription, reason: ResetReason) -> None:
        """Drop what is queued for the subscription and have the writer send reset + snapshot."""
        if not sub.live:
            return
        sub.live = False
        sub.pending.clear()
        self._purge(sub.topic)
        self._enqueue(Sync(sub, reason=reason))

    def close_soon(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the socket; with `flush`, after the frames already queued (e.g. an error that says why)."""
        if self.closed:
            return
        if flush:
            self._enqueue(Close(code, reason))
            return
        self.closed = True
        self._closer = asyncio.create_task(self._close(code, reason))

    # --- internals ------------------------------------------------------------------------------

    def _slow(self, sub: Subscription) -> None:
        now = time.monotonic()
        resets = self._slow_resets or []
        if len(resets) == MAX_SLOW_RESETS and now - resets[0] < SLOW_RESET_WINDOW_S:
            self.hub.stats.closed_slow += 1
            self.close_soon(protocol.CLOSE_TRY_AGAIN_LATER, "cannot keep up")
            return
        self._slow_resets = [*resets[1 - MAX_SLOW_RESETS :], now]
        self.hub.stats.resets_slow += 1
        self.resync(sub, "slow")

    def _enqueue(self, item: tuple[str | None, bytes] | Sync | Close) -> None:
        """Queue writer work; start the writer task if none runs (it ends once the queue is empty)."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        if self._writer is None and not self.closed:
            self._writer = asyncio.create_task(self._write_loop())

    def _purge(self, topic: str) -> None:
        if self._queue is None:
            return
        self._queue = deque(
            item
            for item in self._queue
            if not (isinstance(item, Sync) and item.sub.topic == topic)
            and not (isinstance(item, tuple) and item[0] == topic)
        )

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                if not self._queue:
                    # Nothing left: end here, with no await between the check and the exit, so the
                    # next `_enqueue` starts a new writer. An idle connection keeps no task.
                    self._queue = None
                    break
                item = self._queue.popleft()
                if isinstance(item, Close):
                    self.close_soon(item.code, item.reason)
                elif isinstance(item, Sync):
                    if self.subs.get(item.sub.topic) is item.sub:
                        await self.hub.sync(self, item)
                else:
                    await self.write(item[1])
        except (ConnectionError, RuntimeError) as exc:
            log.debug("websocket writer stopped: %r", exc)
        except TimeoutError:
            self.hub.stats.closed_slow += 1
            self.close_soon(protocol.CLOSE_TRY_AGAIN_LATER, "send timeout")
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    async def write(self, frame: bytes) -> None:
        """Send one frame now (writer task only); events meanwhile queue behind it, keeping order."""
        self._sending = True
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self.ws.send(frame)
        finally:
            self._sending = False

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(code, reason)
        except TimeoutError:
            self.ws.abort()

    async def closing(self) -> None:
        """Wait until a close started by `close_soon` has finished."""
        if self._closer is not None:
            await self._closer

    async def stop(self) -> None:
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
