"""The relay between instances: a stored batch's messages travel as one pub/sub message (split past
`PACK_MAX_BYTES`), and whatever else arrives on the channel is ignored without harm."""

from __future__ import annotations

import logging

from hireflow import keys
from hireflow.pad.relay import PACK_MAX_BYTES, RelayKind, RelayMessage, pack, unpack
from tests.conftest import Factory
from tests.support.pad import two_editors
from tests.support.workers import eventually


def test_messages_pack_into_few_payloads_and_unpack_in_order():
    messages = [
        RelayMessage(RelayKind.UPDATE, f"pad{i}", "src", i + 1, i + 1, bytes([i % 256]) * (i * 997 % 40_000))
        for i in range(100)
    ]
    payloads = pack(messages)
    assert 1 < len(payloads) < len(messages)
    assert all(len(payload) <= PACK_MAX_BYTES + 40_100 for payload in payloads)
    assert [m for payload in payloads for m in unpack(payload)] == messages
    assert pack([]) == []


async def test_junk_on_the_relay_channel_is_ignored(client, second, factory: Factory, redis, caplog):
    session_id, *_, a, b = await two_editors(client, second, factory)
    try:
        whole = pack([RelayMessage(RelayKind.UPDATE, session_id, "x", 1, 1, b"not an update")])[0]
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
