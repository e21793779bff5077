"""The pad over real sockets: pycrdt replicas, the real app, MongoDB and Redis."""

from __future__ import annotations

from hireflow.pad.store import PadStore
from tests.conftest import Factory
from tests.support.pad import new_session, peer
from tests.support.workers import eventually


async def test_two_replicas_converge_and_every_update_is_stored(client, factory: Factory, mongo):
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(client, host, guest)
    a = await peer(client, session_id, host, how="header")
    b = await peer(client, session_id, guest, how="query")
    try:
        a.code += "def f():\n"
        b.meta["language"] = "python"

        async def both():
            return a.text == b.text == "def f():\n" and a.meta.get("language") == "python"

        await eventually(both, timeout_s=5)
        b.code.insert(len(b.code), "    return 1\n")
        await eventually(lambda: _eq(a.text, "def f():\n    return 1\n"), timeout_s=5)
        assert await mongo.pad_updates.count_documents({}) >= 3
        resp = await client.get(f"/api/sessions/{session_id}/pad/content", headers=guest.headers)
        body = await resp.json()
        assert resp.status == 200
        assert body["code"] == "def f():\n    return 1\n"
        assert body["language"] == "python"
        assert body["updatedAt"].endswith("Z")
    finally:
        await a.close()
        await b.close()


async def _eq(value, expected):
    return value == expected


async def test_stored_state_equals_the_replicas(client, factory: Factory, mongo):
    host = await factory.user("host")
    session_id = await new_session(client, host)
    a = await peer(client, session_id, host, how="cookie")
    try:
        for i in range(30):
            a.code.insert(0, f"{i},")
        expected = a.doc.get_update()

        async def stored_matches():
            stored = await PadStore(mongo).load(__import__("bson").ObjectId(session_id))
            from pycrdt import Doc, Text

            doc = Doc()
            doc.apply_update(stored.state)
            return str(doc.get("code", type=Text)) == a.text

        await eventually(stored_matches, timeout_s=10)
        assert expected
    finally:
        await a.close()
