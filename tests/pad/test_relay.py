"""The relay between instances: a stored batch's messages travel as one pub/sub message (split past
`PACK_MAX_BYTES`), whatever else arrives on the channel is ignored without harm, and the order in which
a room applies relayed updates never loses one."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import Any

from bson import ObjectId
from pycrdt import Doc, Text, merge_updates
from redis.asyncio import Redis

from hireflow import keys
from hireflow.pad.relay import PACK_MAX_BYTES, Relay, RelayKind, RelayMessage, new_origin, origin_of, pack, unpack
from hireflow.pad.rooms import Pads
from hireflow.pad.store import Batch, PadStore, PendingUpdate
from hireflow.timeutil import utcnow
from tests.conftest import Factory
from tests.support.pad import two_editors
from tests.support.workers import eventually


def test_messages_pack_into_few_payloads_and_unpack_in_order():
    messages = [
        RelayMessage(RelayKind.UPDATE, f"pad{i}", "src", i + 1, i + 1, bytes([i % 256]) * (i * 997 % 40_000))
        for i in range(100)
    ]
    origin = new_origin()
    payloads = pack(messages, origin)
    assert 1 < len(payloads) < len(messages)
    assert all(len(payload) <= PACK_MAX_BYTES + 40_100 for payload in payloads)
    assert all(origin_of(payload) == origin for payload in payloads)
    assert [m for payload in payloads for m in unpack(payload)] == messages
    assert pack([], origin) == []


def test_packs_of_the_version_before_publisher_names_and_this_one_read_each_other():
    """During a rolling deploy: a pack without a name (as the version before made them) is read here;
    a named pack is the same framing, its name a message that version decodes and ignores (no room
    has the key `-`)."""
    messages = [RelayMessage(RelayKind.UPDATE, f"pad{i}", "src", i, i, b"u") for i in range(1, 4)]
    unnamed = b"".join(struct.pack(">I", len(m.encode())) + m.encode() for m in messages)
    assert origin_of(unnamed) is None
    assert unpack(unnamed) == messages
    (named,) = pack(messages, new_origin())
    framed = []
    while named:  # the version before's reading: lengths and messages, every one decoded
        (length,) = struct.unpack_from(">I", named)
        framed.append(RelayMessage.decode(named[4 : 4 + length]))
        named = named[4 + length :]
    assert [m.pad for m in framed] == ["-", "pad1", "pad2", "pad3"]
    assert framed[1:] == messages


async def test_an_instance_skips_what_it_published_and_hears_the_others(infra):
    """Every instance hears everything on the channel; its own packs it drops without decoding them."""
    clients = [Redis.from_url(infra.redis_url) for _ in range(2)]
    relays = [Relay(c, heartbeat_s=1.0) for c in clients]
    heard: list[list[RelayMessage]] = [[], []]

    async def nothing() -> None:
        return None

    def recorder(into: list[RelayMessage]):
        async def record(message: RelayMessage) -> None:
            into.append(message)

        return record

    listening = [asyncio.create_task(r.run(recorder(h), nothing)) for r, h in zip(relays, heard, strict=True)]
    try:
        for relay in relays:
            assert await relay.wait_connected(5.0)
        sent = [RelayMessage(RelayKind.AWARENESS, "pad", f"from{i}", 0, 0, b"x") for i in range(2)]
        for relay, message in zip(relays, sent, strict=True):
            await relay.publish([message])

        async def both_heard() -> bool:
            return bool(heard[0] and heard[1])

        await eventually(both_heard)
        await asyncio.sleep(0.2)  # time for an own message to arrive, were it not skipped
        assert heard == [[sent[1]], [sent[0]]]
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*listening, return_exceptions=True)
        for c in clients:
            await c.aclose()


async def test_junk_on_the_relay_channel_is_ignored(client, second, factory: Factory, redis, caplog):
    session_id, *_, a, b = await two_editors(client, second, factory)
    try:
        whole = pack([RelayMessage(RelayKind.UPDATE, session_id, "x", 1, 1, b"not an update")], new_origin())[0]
        for junk in (b"", b"\x00\x00\x00\xffshort", whole[:-3], b"\x00\x00\x00\x03a b", whole):
            await redis.publish(keys.PAD_RELAY, junk)
        a.code += "still in sync"

        async def synced() -> bool:
            return b.text == "still in sync"

        await eventually(synced, timeout_s=10)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # the listeners never broke
    finally:
        await a.close()
        await b.close()


def _histories(rng: random.Random, writers: int = 3, edits: int = 60) -> list[list[bytes]]:
    """Each writer's updates, in the order it made them, while the writers sync now and then (so that
    many updates depend on other writers' updates)."""
    docs: list[Doc[Any]] = [Doc(client_id=100 + i) for i in range(writers)]
    made: list[list[bytes]] = [[] for _ in docs]
    for _ in range(edits):
        i = rng.randrange(writers)
        doc, text = docs[i], docs[i].get("code", type=Text)
        before, size = doc.get_state(), len(str(text))
        if size and rng.random() < 0.3:
            at = rng.randrange(size)
            del text[at : min(size, at + rng.randint(1, 3))]
        else:
            text.insert(rng.randint(0, size), rng.choice("abcdef"))
        made[i].append(doc.get_update(before))
        other = docs[rng.randrange(writers)]
        other.apply_update(doc.get_update(other.get_state()))
    return made


def _text(doc: Doc[Any]) -> str:
    return str(doc.get("code", type=Text))


def test_a_room_applying_updates_one_by_one_loses_none_in_the_orders_the_relay_can_deliver():
    """A room applies relayed updates one by one, as they come. Yrs (pycrdt 0.14) can drop an update it
    holds pending when one writer's updates come out of their order: shuffled, 66 of these 100
    histories lose an edit. The relay never does that: each instance publishes its pad's
    updates in sequence, and a room that sees a gap repairs by applying the whole stored state. Both
    properties are what the rooms rely on, so both are checked here: writers interleaved in any way,
    each in its own order, converge; and the whole state applied after any order heals the room."""
    for seed in range(100):
        rng = random.Random(seed)
        made = _histories(rng)
        whole = merge_updates(*[u for updates in made for u in updates])
        expected: Doc[Any] = Doc()
        expected.apply_update(whole)

        interleaved: Doc[Any] = Doc()
        next_of = [0] * len(made)
        while live := [i for i, updates in enumerate(made) if next_of[i] < len(updates)]:
            i = rng.choice(live)
            interleaved.apply_update(made[i][next_of[i]])
            next_of[i] += 1
        assert _text(interleaved) == _text(expected), f"seed {seed}"

        shuffled = [u for updates in made for u in updates]
        rng.shuffle(shuffled)
        repaired: Doc[Any] = Doc()
        for update in shuffled:
            repaired.apply_update(update)
        repaired.apply_update(whole)
        assert _text(repaired) == _text(expected), f"seed {seed}"


class _QueuedLoads(PadStore):
    """Loads that take 50 ms after reading the log, as a repair's load does at 500 pads, where it
    waits for the others' (every room of an instance repairs after a pub/sub drop)."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.loads = 0

    async def _load_many(self, pads: list[ObjectId]) -> dict[ObjectId, Any]:
        loaded = await super()._load_many(pads)
        self.loads += len(pads)
        await asyncio.sleep(0.05)
        return loaded


async def test_a_room_that_missed_relay_messages_catches_up_in_a_repair_or_two_while_its_writer_types(
    infra, mongo, settings
):
    """Another instance's writer keeps storing and relaying an update every 5 ms; two of its messages
    are lost. The room holds what follows the gap, repairs once or twice, applies what it held, and
    ends equal to the writer. Before, every message that came while a repair was loading asked for
    another: the room reloaded for as long as its writer typed (20 s at 500 pads after a pub/sub
    drop, bench/pad.py --drop-relay-at)."""
    store = _QueuedLoads(mongo)
    redis = Redis.from_url(infra.redis_url)
    pads = Pads(store, Relay(redis, heartbeat_s=1.0), settings)
    try:
        pad = ObjectId()
        room = await pads.open(pad, frozen=False)
        writer = Doc(client_id=7)
        text = writer.get("code", type=Text)
        for seq in range(1, 201):
            before = writer.get_state()
            text += f"{seq};"
            update = writer.get_update(before)
            await store.append(Batch(ObjectId(), utcnow(), [PendingUpdate(pad, "other", seq, update)]))
            if seq not in (50, 51):  # lost by pub/sub
                await pads.on_relay(RelayMessage(RelayKind.UPDATE, str(pad), "other", seq, seq, update))
            await asyncio.sleep(0.005)

        async def caught_up() -> bool:
            return not room.repairing and _text(room.doc) == str(text)

        await eventually(caught_up, timeout_s=10)
        assert room.marks["other"] == 200
        assert 1 <= store.loads - 1 <= 3, store.loads  # the open's load, then the repair's
        assert not room.held
    finally:
        await pads.close()
        await redis.aclose()
