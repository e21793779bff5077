"""Bad input closes that socket with a clear code; nothing of it is applied or stored, and the other
replicas go on."""

from __future__ import annotations

import asyncio

import aiohttp
from pycrdt import Doc, Text, create_update_message

from tests.conftest import Factory
from tests.support.pad import new_session, open_ws, peer
from tests.support.workers import eventually


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            return ws.close_code
        if msg.type == aiohttp.WSMsgType.ERROR:
            return ws.close_code


async def _raw(client, session_id, user):
    return await open_ws(client, session_id, user.token)


def _update(text: str, size: int = 0) -> bytes:
    doc = Doc()
    doc.get("code", type=Text).insert(0, text * max(1, size // max(1, len(text))))
    return doc.get_update()


async def test_malformed_and_oversize_messages_close_only_their_socket(client, factory: Factory, mongo, settings):
    host, guest = await factory.user("host"), await factory.user("guest")
    session_id = await new_session(client, host, guest)
    good = await peer(client, session_id, host)
    try:
        cases = [
            (b"\x00\x02\x05ab", 1007),  # an update shorter than its length
            (b"\x00\x02\x03\xff\xff\xff", 1007),  # not a Yjs update
            (b"\x07", 1007),  # unknown message type
            ("text", 1007),
            (create_update_message(_update("x", settings.pad_max_message_bytes + 10)), 1009),
        ]
        for frame, code in cases:
            session, ws = await _raw(client, session_id, guest)
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
            assert await _close_code(ws) == code, frame[:8]
            await session.close()
        assert await mongo.pad_updates.count_documents({}) == 0
        good.code += "still fine"
        await eventually(lambda: _stored(mongo, 1), timeout_s=5)
    finally:
        await good.close()


async def _stored(mongo, n):
    return await mongo.pad_updates.count_documents({}) == n


async def test_a_document_past_its_limit_is_refused(client, factory: Factory, mongo, settings):
    host = await factory.user("host")
    session_id = await new_session(client, host)
    session, ws = await _raw(client, session_id, host)
    chunk = settings.pad_max_message_bytes - 1024
    try:
        sent = 0
        code = None
        for i in range(settings.pad_max_doc_bytes // chunk + 2):
            await ws.send_bytes(create_update_message(_update(chr(ord("a") + i), chunk)))
            sent += 1
            await asyncio.sleep(0.05)
            if ws.closed:
                break
        code = await _close_code(ws)
        assert code == 1009
        assert await mongo.pad_updates.count_documents({}) < sent
    finally:
        await session.close()


async def test_a_flood_of_messages_closes_with_1008(client, factory: Factory):
    host = await factory.user("host")
    session_id = await new_session(client, host)
    session, ws = await _raw(client, session_id, host)
    try:
        for _ in range(500):
            await ws.send_bytes(b"\x03")  # query awareness: cheap, valid
        assert await _close_code(ws) == 1008
    finally:
        await session.close()
