"""One pad in memory (`Room`) and one client socket on it (`PadSocket`).

The room's document holds only what is stored in MongoDB: a client's update reaches it (and every
other replica) only after the writer stored it, so whatever any client ever saw is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from bson import ObjectId
from pycrdt import Awareness, Doc, Map, Text, create_awareness_message, create_update_message

from hireflow.realtime.connection import takes_write_now
from hireflow.realtime.protocol import wire_binary_frame

log = logging.getLogger(__name__)

CLOSE_FROZEN = 4409
"""The session ended: the pad is read-only and this socket sent an edit (nothing of it was stored)."""
CLOSE_AUTH = 4001
CLOSE_MALFORMED = 1007
CLOSE_RATE = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNAVAILABLE = 1013
CLOSE_GOING_AWAY = 1001


HELD_MAX = 10_000
"""Relayed updates a room holds at most while it waits for a repair (see `Room.hold`)."""


@dataclass(frozen=True)
class Held:
    first: int
    last: int
    update: bytes


class PadSocket:
    """A client's WebSocket. A frame goes straight to the transport (on the loop thread; under uvloop a
    C call, sent at the end of the loop iteration) when nothing is queued or being sent ahead of it and
    little is buffered; otherwise into a bounded queue drained by the socket's writer task, so a
    broadcast never awaits a slow client. One that falls `queue_max` frames behind is closed with 1013
    (its provider reconnects and re-syncs, losing nothing)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        user_id: str,
        *,
        queue_max: int,
        expires_at: float,
    ) -> None:
        self.ws = ws
        self.user_id = user_id
        self.expires_at = expires_at
        self.client_ids: set[int] = set()
        self._transport = transport
        self._queue: asyncio.Queue[bytes | tuple[int, str]] = asyncio.Queue(maxsize=queue_max)
        self._closing = False
        self._sending = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._write())

    def send(self, frame: bytes) -> None:
        if self._closing:
            return
        if not self._sending and self._queue.empty() and takes_write_now(self._transport):
            assert self._transport is not None
            self._transport.write(wire_binary_frame(frame))
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close_soon(CLOSE_UNAVAILABLE, "too slow, reconnect")

    def close_soon(self, code: int, reason: str) -> None:
        """Close after what is already queued (the close itself jumps a full queue)."""
        if self._closing:
            return
        self._closing = True
        while self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait((code, reason))

    @property
    def closing(self) -> bool:
        return self._closing

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                self._sending = True
                if isinstance(item, tuple):
                    await self.ws.close(code=item[0], message=item[1].encode())
                    return
                await self.ws.send_bytes(item)
                self._sending = False
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def done(self) -> None:
        """Wait until the writer finished (after a close it sends the close frame first)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Room:
    """A pad loaded in this process: its document, presence, sockets and bookkeeping."""

    def __init__(self, pad: ObjectId, *, awareness_timeout_s: float) -> None:
        self.pad = pad
        self.key = str(pad)
        self.src = secrets.token_hex(8)
        """This life of the pad in this process: the writer of its `seq` numbers."""
        self.next_seq = 0
        self.doc: Doc[Any] = Doc()
        self.awareness = Awareness(self.doc, outdated_timeout=int(awareness_timeout_s * 1000))
        self.awareness.set_local_state(None)  # the server itself has no presence
        self.sockets: set[PadSocket] = set()
        self.marks: dict[str, int] = {}
        self.size = 0
        self.frozen = False
        self.inflight = 0
        self.pending_bytes = 0
        """Bytes of this room's updates submitted to the writer and not yet stored."""
        self.repairing = False
        self.repair_again = False
        self.held: dict[str, list[Held]] = {}
        """Relayed updates that came after a gap in their writer's sequence, per writer, applied once a
        repair brought what they follow (`release_held`)."""
        self.held_count = 0
        self.users = 0
        """Sockets attached or about to be (see Pads.open/release)."""
        self.idle_since: float | None = time.monotonic()
        self.ready = asyncio.Event()
        self.backlog: list[Any] = []
        self.awareness.observe(self._track_clients)

    def _track_clients(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        """Remember which awareness client ids each socket announced, to remove them when it closes."""
        if topic != "update":
            return
        changes, origin = change
        if isinstance(origin, PadSocket):
            origin.client_ids.update(changes["added"], changes["updated"])
            origin.client_ids.difference_update(changes["removed"])

    def broadcast(self, frame: bytes, *, exclude: PadSocket | None = None) -> None:
        for sock in self.sockets:
            if sock is not exclude:
                sock.send(frame)

    def apply(self, update: bytes, *, exclude: PadSocket | None = None) -> None:
        """Apply a stored update and forward it to this instance's sockets."""
        self.doc.apply_update(update)
        self.size += len(update)
        self.broadcast(create_update_message(update), exclude=exclude)

    def adds_anything(self, update: bytes) -> bool:
        """Whether the update holds anything this document lacks. Costs a copy of the document, so it
        is asked only of sync step 2 (once per connection: Yjs always puts its whole delete set in it)
        and of edits to a frozen pad."""
        full = self.doc.get_update()
        trial: Doc[Any] = Doc()
        trial.apply_update(full)
        trial.apply_update(update)
        return trial.get_update() != full

    def hold(self, src: str, first: int, last: int, update: bytes) -> None:
        """Keep a relayed update that follows a gap until a repair fills it. Past `HELD_MAX` the held
        ones are dropped, and the repair asked to load once more: they are stored, so it brings them."""
        if self.held_count >= HELD_MAX:
            self.held.clear()
            self.held_count = 0
            self.repair_again = True
        self.held.setdefault(src, []).append(Held(first, last, update))
        self.held_count += 1

    def release_held(self) -> bool:
        """Apply the held updates that now follow their writer's mark (forwarding them), in order, and
        drop those a load already brought. Whether any is still held (its gap not filled yet). A held
        update that does not decode is dropped without moving the mark: the stored copy comes with the
        next load."""
        for src, held in list(self.held.items()):
            held.sort(key=lambda h: h.first)
            mark = self.marks.get(src, 0)
            while held and held[0].first <= mark + 1:
                item = held.pop(0)
                self.held_count -= 1
                if item.last <= mark:
                    continue
                try:
                    self.apply(item.update)
                except ValueError:
                    log.warning("pad %s: a relayed update from %s does not decode; dropped", self.key, src)
                    break
                mark = self.marks[src] = item.last
            if not held:
                del self.held[src]
        return bool(self.held)

    def merge_in(self, state: bytes) -> None:
        """Merge a state read back from MongoDB; send this instance's sockets whatever it added."""
        before = self.doc.get_state()
        self.doc.apply_update(state)
        diff = self.doc.get_update(before)
        if diff != b"\x00\x00":
            self.broadcast(create_update_message(diff))
        self.size = len(self.doc.get_update()) + self.pending_bytes

    def awareness_frame(self, client_ids: list[int] | None = None) -> bytes | None:
        ids = list(self.awareness.states) if client_ids is None else client_ids
        if not ids:
            return None
        return create_awareness_message(self.awareness.encode_awareness_update(ids))

    def drop_presence(self, client_ids: list[int], origin: Any) -> bytes | None:
        """Remove these presences; the awareness frame that tells the other replicas so."""
        present = [cid for cid in client_ids if cid in self.awareness.states]
        if not present:
            return None
        self.awareness.remove_awareness_states(present, origin)
        return create_awareness_message(self.awareness.encode_awareness_update(present))

    def outdated_presence(self, now_ms: int, timeout_ms: int) -> list[int]:
        return [
            cid
            for cid, meta in self.awareness.meta.items()
            if cid in self.awareness.states and now_ms - meta["lastUpdated"] >= timeout_ms
        ]

    def content(self) -> tuple[str, str | None]:
        return content_of(self.doc)


def content_of(doc: Doc[Any]) -> tuple[str, str | None]:
    """(code, language) of a pad document; a root of another type than expected reads as empty."""
    try:
        code = str(doc.get("code", type=Text))
    except (TypeError, ValueError):
        code = ""
    try:
        language = doc.get("meta", type=Map).get("language")
    except (TypeError, ValueError):
        language = None
    return code, language if isinstance(language, str) else None
