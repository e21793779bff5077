"""The bus's epochs across Redis nodes: a topic whose counter was written by another Redis (a replica
promoted since, possibly lagging) starts a new epoch instead of handing out sequence numbers twice."""

from __future__ import annotations

from hireflow import keys
from hireflow.realtime.bus import Bus


async def test_a_counter_from_another_node_starts_a_new_epoch(redis, settings):
    bus = Bus(redis, settings)
    epoch, seq = await bus.publish("lobby", b'{"n":1}')
    assert (await bus.publish("lobby", b'{"n":2}')) == (epoch, seq + 1)
    assert await bus.meta("lobby") == (epoch, seq + 1)

    # As if this hash had been replicated from a primary that died after two more events that the
    # replica never received: the replica's counter is behind what subscribers saw.
    await redis.hset(keys.RT_META + "lobby", mapping={"node": "a-dead-primary", "seq": seq})
    new_epoch, new_seq = await bus.meta("lobby")
    assert new_epoch != epoch and new_seq == 0
    assert await bus.replay("lobby", 0, 0) == []
    assert await bus.publish("lobby", b'{"n":3}') == (new_epoch, 1), "the new epoch stays on this node"


async def test_publish_alone_notices_the_node_change(redis, settings):
    bus = Bus(redis, settings)
    epoch, _ = await bus.publish("session:x", b"{}")
    await redis.hset(keys.RT_META + "session:x", "node", "elsewhere")
    new_epoch, seq = await bus.publish("session:x", b"{}")
    assert new_epoch != epoch and seq == 1
