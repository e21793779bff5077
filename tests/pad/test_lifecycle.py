"""Ending a session freezes its pad everywhere; idle pads leave memory; the log is compacted; presence
is relayed and removed when its socket closes."""

from __future__ import annotations

import asyncio

import aiohttp
from pycrdt import Awareness, Doc, create_awareness_message

from hireflow.pad import writer
from hireflow.pad.room import CLOSE_FROZEN
from hireflow.web.app import create_app
from hireflow.web.appkeys import HUB, PADS
from tests.conftest import Factory, make_settings, serve
from tests.support.pad import new_session, open_ws, peer, two_editors
from tests.support.workers import eventually


async def test_ending_the_session_freezes_the_pad_on_every_instance(client, second, factory: Factory, mongo):
    session_id, host, guest, a, b = await two_editors(client, second, factory)
    try:
        a.code += "final answer!!"
        del a.code[12:14]  # a deletion: every later sync step 2 of A carries it
        await eventually(lambda: _same(b, "final answer"), timeout_s=5)
        stored = await mongo.pad_updates.count_documents({})
        assert (await client.post(f"/api/sessions/{session_id}/end", headers=host.headers)).status == 200

        async def frozen_on_b():
            room = second.app[PADS].rooms.get(session_id)
            return room is not None and room.frozen

        await eventually(frozen_on_b, timeout_s=5)
        b.code += " (too late)"
        await eventually(lambda: _closed_with(b, CLOSE_FROZEN), timeout_s=5)
        assert await mongo.pad_updates.count_documents({}) == stored
        # Still readable: a new replica gets the final state, and so does the content route.
        late = await peer(second, session_id, host)
        assert late.text == "final answer"
        await late.close()
        # A replica that knows nothing new reconnects: its sync step 2 (the delete set) is no edit.
        await a.close()
        a = await peer(client, session_id, host, doc=a.doc)
        await asyncio.sleep(0.5)
        assert not a.ws.closed
        body = await (await second.get(f"/api/sessions/{session_id}/pad/content", headers=guest.headers)).json()
        assert body["code"] == "final answer"
    finally:
        await a.close()
        await b.close()


async def test_a_freeze_whose_relay_message_is_lost_still_holds(client, second, factory: Factory, mongo, monkeypatch):
    """The instance that ended the session dies before relaying the freeze (here: never relays it):
    the other instance's open room learns it from the store at its next write."""
    session_id, host, _guest, a, b = await two_editors(client, second, factory)
    try:
        await _final_then_freezes_lost(client, a, b, monkeypatch)
        assert (await client.post(f"/api/sessions/{session_id}/end", headers=host.headers)).status == 200
        room = second.app[PADS].rooms[session_id]
        assert not room.frozen  # B never heard of the end
        stored = await mongo.pad_updates.count_documents({})
        b.code += " (too late)"
        await eventually(lambda: _closed_with(b, CLOSE_FROZEN), timeout_s=5)
        assert room.frozen
        assert await mongo.pad_updates.count_documents({}) == stored
        body = await (await client.get(f"/api/sessions/{session_id}/pad/content", headers=host.headers)).json()
        assert body["code"] == "final"
        await asyncio.sleep(0.3)
        assert a.text == "final"  # never forwarded to anyone
    finally:
        await a.close()
        await b.close()


async def test_no_edit_sent_after_the_end_route_answers_is_stored_when_the_relay_loses_the_freeze(
    client, second, factory: Factory, mongo, monkeypatch
):
    """B's writer trusts a read of the ended sessions for `FREEZE_CHECK_EVERY_S`, and the route waits
    as long (here 0.5 s, so that a route answering sooner would be caught): B types all through the
    end, so its writer keeps reusing a read from just before it. The route answers only once that read
    is too old to be trusted."""
    monkeypatch.setattr(writer, "FREEZE_CHECK_EVERY_S", 0.5)
    session_id, host, _guest, a, b = await two_editors(client, second, factory)
    typing = True

    async def type_on_b() -> None:
        while typing:
            b.code += "."
            await asyncio.sleep(0.02)

    try:
        await _final_then_freezes_lost(client, a, b, monkeypatch)
        typist = asyncio.create_task(type_on_b())
        await asyncio.sleep(0.3)
        assert (await client.post(f"/api/sessions/{session_id}/end", headers=host.headers)).status == 200
        typing = False
        await typist
        b.code += "AFTER"
        await eventually(lambda: _closed_with(b, CLOSE_FROZEN), timeout_s=5)
        await eventually(lambda: _drained(second, session_id), timeout_s=5)
        body = await (await client.get(f"/api/sessions/{session_id}/pad/content", headers=host.headers)).json()
        assert body["code"].startswith("final")
        assert "AFTER" not in body["code"]
    finally:
        await a.close()
        await b.close()


async def _drained(app_client, session_id):
    room = app_client.app[PADS].rooms.get(session_id)
    return room is None or room.inflight == 0


async def _final_then_freezes_lost(client, a, b, monkeypatch) -> None:
    """A types "final" and B has it; from then on, A's instance never relays a freeze (as if it died
    before relaying it)."""
    a.code += "final"
    await eventually(lambda: _same(b, "final"), timeout_s=5)

    async def lost(pad_key: str) -> None:
        return None

    monkeypatch.setattr(client.app[PADS], "freeze", lost)


async def _closed_with(replica, code):
    return replica.ws.closed and replica.ws.close_code == code


async def _same(replica, text):
    return replica.text == text


async def test_idle_pads_unload_and_reload_from_mongodb(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    settings = make_settings(infra, db_name, *fake_clerk, pad_idle_unload_s=0.2, pad_compact_updates=5)
    app_client = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        session_id = await new_session(app_client, host)
        a = await peer(app_client, session_id, host)
        for i in range(12):
            a.code += f"{i};"
            await asyncio.sleep(0.1)  # one stored batch each: a checkpoint compacts every 3-5 batches
        expected = a.text

        async def compacted():
            return await mongo.pad_updates.count_documents({}) < 12

        await eventually(compacted, timeout_s=10)
        await a.close()

        async def unloaded():
            return session_id not in app_client.app[PADS].rooms

        await eventually(unloaded, timeout_s=5)
        again = await peer(app_client, session_id, host)
        assert again.text == expected
        await again.close()
        assert await mongo.pad_updates.count_documents({}) < 12
    finally:
        await app_client.close()


async def test_presence_is_relayed_across_instances_and_removed_on_close(client, second, factory: Factory):
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(client, host, guest)
    watcher = await peer(second, session_id, guest)
    seen = Awareness(Doc())
    seen.set_local_state(None)

    async def pump_until(predicate):
        while not predicate():
            msg = await watcher.ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == 1:
                from pycrdt import read_message

                seen.apply_awareness_update(read_message(msg.data[1:]), "server")

    # Read the raw frames ourselves: stop pycrdt's provider from consuming them.
    await watcher.provider.stop()
    session, ws = await open_ws(client, session_id, host.token)
    try:
        doc = Doc()
        mine = Awareness(doc)
        mine.set_local_state({"user": {"name": "Host", "color": "#f00"}, "cursor": 3})
        await ws.send_bytes(create_awareness_message(mine.encode_awareness_update([doc.client_id])))
        await pump_until(lambda: seen.states.get(doc.client_id, {}).get("cursor") == 3)
        await ws.close()
        await pump_until(lambda: doc.client_id not in seen.states)
    finally:
        await session.close()
        await watcher.ws.close()
        await watcher.session.close()


async def _closed(replica, code):
    return replica.ws.closed and replica.ws.close_code == code


async def test_expired_tokens_and_deleted_users_close_with_4001(infra, db_name, fake_clerk, redis, mongo, factory):
    settings = make_settings(infra, db_name, *fake_clerk, ws_token_grace_s=0.0)
    app_client = await serve(create_app(settings))
    second_app = await serve(create_app(settings))
    try:
        host, guest = await factory.user("host"), await factory.user("guest")
        session_id = await new_session(app_client, host, guest)
        short = factory.token(host.doc["clerkId"], ttl_s=1.5)
        from tests.conftest import User

        expiring = await peer(app_client, session_id, User(doc=host.doc, token=short))
        deleted = await peer(second_app, session_id, guest)
        await eventually(lambda: _closed(expiring, 4001), timeout_s=10)
        await app_client.app[HUB].disconnect_user(guest.doc["clerkId"])  # what the user sync does
        await eventually(lambda: _closed(deleted, 4001), timeout_s=10)
        await expiring.close()
        await deleted.close()
    finally:
        await app_client.close()
        await second_app.close()
