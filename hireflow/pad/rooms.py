"""Every pad this process has open: loading, the write path, the relay in and out, repair, freezing,
presence time-outs and idle unloading."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from bson import ObjectId
from pycrdt import create_sync_message
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from hireflow.pad import messages
from hireflow.pad.checkpoint import Checkpointer
from hireflow.pad.messages import Kind, Message
from hireflow.pad.relay import Relay, RelayKind, RelayMessage
from hireflow.pad.room import CLOSE_AUTH, CLOSE_FROZEN, CLOSE_TOO_BIG, PadSocket, Room
from hireflow.pad.store import PadStore, PendingUpdate
from hireflow.pad.writer import Item, UpdateWriter
from hireflow.settings import Settings

log = logging.getLogger(__name__)

_UNPUBLISHED_MAX = 10_000
FROZEN_REASON = "session ended: the pad is read-only"
PUBLISH_RETRY_FIRST_S = 0.1
PUBLISH_RETRY_MAX_S = 2.0


class Pads:
    def __init__(self, store: PadStore, relay: Relay, settings: Settings) -> None:
        self.store = store
        self.relay = relay
        self._settings = settings
        self.rooms: dict[str, Room] = {}
        self.checkpoints = Checkpointer(store, every=settings.pad_compact_updates)
        self.writer = UpdateWriter(store, self._on_stored, self._on_refused, self.checkpoints.wrote, self._on_ended)
        self._outbox: list[RelayMessage] = []
        self._publisher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- opening and closing -------------------------------------------------------------------

    async def open(self, pad: ObjectId, *, frozen: bool) -> Room:
        """The loaded room of this pad (loading it from MongoDB first when needed)."""
        key = str(pad)
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(pad, awareness_timeout_s=self._settings.pad_awareness_timeout_s)
            try:
                stored = await self.store.load(pad)
            except BaseException:
                del self.rooms[key]
                room.ready.set()
                raise
            room.doc.apply_update(stored.state)
            room.marks = stored.marks
            room.size = stored.size
            room.ready.set()
            backlog, room.backlog = room.backlog, []
            for message in backlog:
                await self._on_update_relayed(room, message)
        else:
            await room.ready.wait()
            if self.rooms.get(key) is not room:  # its load failed: try again
                return await self.open(pad, frozen=frozen)
        room.frozen = room.frozen or frozen or pad in self.writer.ended
        room.users += 1  # not idle from here: the caller attaches a socket, or releases the room
        room.idle_since = None
        return room

    def release(self, room: Room) -> None:
        """The caller of `open` is done with the room (its socket closed, or never opened)."""
        room.users -= 1
        if room.users <= 0:
            room.idle_since = time.monotonic()

    def attach(self, room: Room, sock: PadSocket) -> None:
        """A new socket: it gets the server's state vector and every presence, as y-websocket does."""
        room.sockets.add(sock)
        sock.send(create_sync_message(room.doc))
        frame = room.awareness_frame()
        if frame is not None:
            sock.send(frame)

    def detach(self, room: Room, sock: PadSocket) -> None:
        room.sockets.discard(sock)
        self.release(room)
        frame = room.drop_presence(sorted(sock.client_ids), sock)
        if frame is not None:
            room.broadcast(frame)
            self._publish_soon(RelayMessage(RelayKind.AWARENESS, room.key, room.src, 0, 0, frame))

    # --- from a client -------------------------------------------------------------------------

    def on_message(self, room: Room, sock: PadSocket, message: Message) -> tuple[int, str] | None:
        """Handle one parsed client message; a (close code, reason) when the socket must close."""
        if message.kind is Kind.SYNC_STEP1:
            sock.send(messages.sync_step2(room.doc.get_update(message.payload)))
        elif message.kind is Kind.SYNC_STEP2:
            if message.payload != messages.EMPTY_UPDATE and room.adds_anything(message.payload):
                return self._on_client_update(room, sock, message.payload)
        elif message.kind is Kind.UPDATE:
            return self._on_client_update(room, sock, message.payload)
        elif message.kind is Kind.AWARENESS:
            try:
                room.awareness.apply_awareness_update(message.payload, sock)
            except (ValueError, IndexError, RuntimeError, UnicodeDecodeError) as exc:
                raise messages.MalformedMessage(f"invalid awareness update: {exc}") from exc
            out = messages.awareness_frame(message.payload)
            room.broadcast(out, exclude=sock)
            self._publish_soon(RelayMessage(RelayKind.AWARENESS, room.key, room.src, 0, 0, out))
        elif message.kind is Kind.QUERY_AWARENESS:
            frame = room.awareness_frame()
            if frame is not None:
                sock.send(frame)
        return None

    def _on_client_update(self, room: Room, sock: PadSocket, update: bytes) -> tuple[int, str] | None:
        if update == messages.EMPTY_UPDATE:
            return None
        if room.frozen:
            if not room.adds_anything(update):
                return None
            return CLOSE_FROZEN, FROZEN_REASON
        limit = self._settings.pad_max_doc_bytes
        if room.size + len(update) > limit:
            room.size = len(room.doc.get_update()) + room.pending_bytes
            if room.size + len(update) > limit:
                return CLOSE_TOO_BIG, "the pad would exceed its size limit"
        room.size += len(update)
        self.writer.submit(room, sock, update)
        return None

    # --- stored: apply, forward, publish -------------------------------------------------------

    async def _on_stored(self, batch: list[Item], grouped: list[PendingUpdate]) -> None:
        for item in batch:
            item.room.size -= len(item.pending.update)  # counted again by apply()
            item.room.apply(item.pending.update, exclude=item.origin)
        # As stored: one message per pad life, its updates already merged by the writer.
        self._publish(
            [RelayMessage(RelayKind.UPDATE, str(u.pad), u.src, u.first or u.seq, u.seq, u.update) for u in grouped]
        )

    def _on_ended(self, ended: set[ObjectId]) -> None:
        """The store says these sessions ended: freeze their pads loaded here (not only those with an
        update in the batch: a room may hear of the end long after it, and the next check won't say)."""
        for pad in ended:
            room = self.rooms.get(str(pad))
            if room is not None and not room.frozen:
                log.info("pad %s: the store says its session ended; frozen here", room.key)
                self.freeze_soon(room.key)

    def _on_refused(self, refused: list[Item]) -> None:
        """The store says these pads are frozen (this instance may not have heard of the end): freeze
        them here, close the sockets that sent the refused edits (4409), tell the other instances."""
        rooms: dict[Room, None] = {}
        for item in refused:
            item.room.size -= len(item.pending.update)
            rooms[item.room] = None
            if item.origin is not None:
                item.origin.close_soon(CLOSE_FROZEN, FROZEN_REASON)
        for room in rooms:
            if not room.frozen:
                self.freeze_soon(room.key)

    def _publish(self, out: list[RelayMessage]) -> None:
        """Queue for the publisher task: the writer never waits for Redis."""
        self._outbox.extend(out)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_all())

    async def _publish_all(self) -> None:
        """Publish in order. What Redis refuses is retried (presence is dropped instead: it is renewed
        anyway), so other instances eventually see every sequence number and repair any gap."""
        delay_s = PUBLISH_RETRY_FIRST_S
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                await self.relay.publish(batch)
                delay_s = PUBLISH_RETRY_FIRST_S
            except (RedisError, OSError) as exc:
                log.warning("pad relay: publishing %d messages failed, retrying: %r", len(batch), exc)
                kept = [m for m in batch if m.kind is not RelayKind.AWARENESS]
                self._outbox = (kept + self._outbox)[-_UNPUBLISHED_MAX:]
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, PUBLISH_RETRY_MAX_S)

    def _publish_soon(self, message: RelayMessage) -> None:
        self._publish([message])

    # --- from other instances ------------------------------------------------------------------

    async def on_relay(self, message: RelayMessage) -> None:
        room = self.rooms.get(message.pad)
        if room is None or message.src == room.src:
            return
        if message.kind is RelayKind.FREEZE:
            room.frozen = True
        elif not room.ready.is_set():
            room.backlog.append(message)
        elif message.kind is RelayKind.UPDATE:
            await self._on_update_relayed(room, message)
        elif message.kind is RelayKind.AWARENESS:
            try:
                room.awareness.apply_awareness_update(messages.read_awareness(message.payload), None)
            except (ValueError, IndexError, RuntimeError, messages.MalformedMessage):
                return
            room.broadcast(message.payload)

    async def _on_update_relayed(self, room: Room, message: RelayMessage) -> None:
        if message.kind is not RelayKind.UPDATE:
            return
        mark = room.marks.get(message.src, 0)
        if message.last <= mark:
            return  # already loaded from MongoDB
        if message.first != mark + 1:
            # Some of this writer's updates never came (pub/sub drops messages). Applied before them,
            # Yrs keeps an update pending and may drop it (test_relay.py); so it waits for the repair,
            # which loads what is missing (stored before this was relayed) and then applies it.
            room.hold(message.src, message.first, message.last, message.payload)
            if not room.repairing:
                log.info("pad %s: missed updates %d.. of %s; repairing", room.key, mark + 1, message.src)
                self._spawn(self.repair(room))
            return
        try:
            room.apply(message.payload)
        except ValueError:  # not a Yjs update: nothing was applied; the store has what was meant
            log.warning("pad %s: a relayed update from %s does not decode; repairing", room.key, message.src)
            self._spawn(self.repair(room))
            return
        room.marks[message.src] = message.last

    async def repair(self, room: Room) -> None:
        """Reload the pad from MongoDB, merge it in, then apply the relayed updates held for it
        (coalesced: one repair at a time per room). Loads again while some are still held: their gap
        was stored after the load read the log (but before they were relayed, so the next load has
        it)."""
        if room.repairing:
            room.repair_again = True
            return
        room.repairing = True
        try:
            while True:
                room.repair_again = False
                gaps = False
                try:
                    stored = await self.store.load(room.pad)
                except PyMongoError as exc:
                    log.warning("pad %s: repair failed, retrying: %r", room.key, exc)
                    await asyncio.sleep(1.0)
                    room.repair_again = True
                else:
                    room.merge_in(stored.state)
                    for src, seq in stored.marks.items():
                        room.marks[src] = max(room.marks.get(src, 0), seq)
                    gaps = room.release_held()
                if not (room.repair_again or gaps) or self.rooms.get(room.key) is not room:
                    return
        finally:
            room.repairing = False

    async def repair_all(self) -> None:
        for room in list(self.rooms.values()):
            if room.ready.is_set():
                self._spawn(self.repair(room))

    async def on_control(self, message: bytes) -> None:
        """The realtime bus's control channel: a deleted user's pad sockets close (4001) everywhere."""
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError:
            return
        if isinstance(data, dict) and data.get("type") == "disconnect_user":
            for room in list(self.rooms.values()):
                for sock in list(room.sockets):
                    if sock.user_id == data.get("userId"):
                        sock.close_soon(CLOSE_AUTH, "user deleted")

    # --- lifecycle ---------------------------------------------------------------------------

    async def freeze(self, pad_key: str) -> None:
        """The session ended: refuse further edits here and on every instance."""
        self.freeze_soon(pad_key)

    def freeze_soon(self, pad_key: str) -> None:
        """Freeze the pad here, and tell the other instances (the relay is the fast path; should its
        message be lost, each instance learns it from the store at its next write: see writer.py)."""
        room = self.rooms.get(pad_key)
        if room is not None:
            room.frozen = True
        self._publish([RelayMessage(RelayKind.FREEZE, pad_key, "-", 0, 0, b"")])

    async def maintain_forever(self) -> None:
        """Unload idle pads and time out stale presence."""
        interval_s = min(1.0, self._settings.pad_idle_unload_s / 4)
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.maintain()
            except Exception:
                log.exception("pad maintenance failed")

    def maintain(self) -> None:
        now, now_ms = time.monotonic(), int(time.time() * 1000)
        timeout_ms = int(self._settings.pad_awareness_timeout_s * 1000)
        for key, room in list(self.rooms.items()):
            if not room.ready.is_set():
                continue
            if (
                room.idle_since is not None
                and now - room.idle_since >= self._settings.pad_idle_unload_s
                and room.inflight == 0
                and not room.repairing
            ):
                del self.rooms[key]
                continue
            stale = room.outdated_presence(now_ms, timeout_ms)
            if stale:
                frame = room.drop_presence(stale, "timeout")
                if frame is not None:
                    room.broadcast(frame)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.writer.drain(5.0)
        self.writer.cancel()
        if self._publisher is not None:
            self._publisher.cancel()
            self._tasks.add(self._publisher)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
