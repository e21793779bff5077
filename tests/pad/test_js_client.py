"""The real JavaScript client: two unmodified y-websocket `WebsocketProvider`s (Node, npm's yjs,
y-websocket and ws), one per web instance, make 1,000 concurrent random edits and end byte-identical
to each other and to the state stored in MongoDB."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pycrdt import Decoder, Doc, Text

from hireflow.pad.store import PadStore
from tests.conftest import Factory
from tests.support.node import NodeClient
from tests.support.pad import new_session
from tests.support.workers import eventually


def state_vector(encoded: bytes) -> dict[int, int]:
    decoder = Decoder(encoded)
    return {decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())}


@pytest.mark.timeout(240)
async def test_two_node_clients_on_two_instances_converge(client, second, factory: Factory, mongo, node_modules):
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(client, host, guest)
    room = f"{session_id}/pad"
    a = await NodeClient.start(node_modules, _ws_base(client), room, host.token, 500, 1)
    b = await NodeClient.start(node_modules, _ws_base(second), room, guest.token, 500, 2)
    store = PadStore(mongo)
    try:

        async def settled():
            if a.latest.get("done") != 500 or b.latest.get("done") != 500:
                return False
            stored = await store.load(ObjectId(session_id))
            svs = [state_vector(a.state_vector), state_vector(b.state_vector), state_vector(_sv(stored.state))]
            return svs[0] == svs[1] == svs[2] and len(svs[0]) == 2

        await eventually(settled, timeout_s=180, every_s=0.5)
        (update_a, text_a), (update_b, text_b) = await a.dump(), await b.dump()
        assert update_a == update_b  # byte-identical Yjs encodings
        assert text_a == text_b
        stored = await store.load(ObjectId(session_id))
        server, from_node = Doc(), Doc()
        server.apply_update(stored.state)
        from_node.apply_update(update_a)
        assert server.get_update() == from_node.get_update()  # byte-identical once both are Yrs-encoded
        assert str(server.get("code", type=Text)) == text_a
        assert a.latest["closes"] == [] and b.latest["closes"] == []
    finally:
        await a.close()
        await b.close()


def _sv(update: bytes) -> bytes:
    doc = Doc()
    doc.apply_update(update)
    return doc.get_state()


def _ws_base(app_client) -> str:
    """The provider's server URL: the room name `<id>/pad` is appended to it."""
    return str(app_client.make_url("/api/sessions")).replace("http", "ws", 1)
