"""Who may open a pad: 401 without a token, 403 for strangers and foreign origins, 404 for unknown ids;
a query token is never logged."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from bson import ObjectId

from tests.conftest import Factory
from tests.support.pad import new_session, open_ws, peer


async def _status(client, session_id, token, **kwargs) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        session, _ws = await open_ws(client, session_id, token, **kwargs)
        await session.close()
    return info.value.status


async def test_handshake_refusals(client, factory: Factory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    session_id = await new_session(client, host, guest)
    assert await _status(client, session_id, None) == 401
    assert await _status(client, session_id, "not-a-jwt") == 401
    assert await _status(client, session_id, stranger.token) == 403
    assert await _status(client, str(ObjectId()), host.token) == 404
    assert await _status(client, "not-an-id", host.token) == 404
    assert await _status(client, session_id, host.token, origin="http://evil.test") == 403


async def test_every_way_of_passing_the_token(client, factory: Factory):
    host = await factory.user("host")
    session_id = await new_session(client, host)
    for how in ("query", "header", "cookie"):
        replica = await peer(client, session_id, host, how=how)
        await replica.close()


async def test_a_query_token_is_never_logged(client, factory: Factory, caplog):
    host = await factory.user("host")
    session_id = await new_session(client, host)
    caplog.set_level(logging.DEBUG)
    replica = await peer(client, session_id, host, how="query")
    await replica.close()
    assert await _status(client, session_id, host.token + "x") == 401
    assert host.token not in caplog.text
    assert "/api/sessions/{id}/pad" in caplog.text


async def test_content_is_for_members_only(client, factory: Factory):
    host, stranger = await factory.user("host"), await factory.user("stranger")
    session_id = await new_session(client, host)
    resp = await client.get(f"/api/sessions/{session_id}/pad/content", headers=stranger.headers)
    assert resp.status == 403
    assert (await resp.json())["message"] == "Only the host and the participant can open the pad"
    resp = await client.get(f"/api/sessions/{session_id}/pad/content", headers=host.headers)
    assert await resp.json() == {"code": "", "language": None, "updatedAt": None}
    assert (await client.get("/api/sessions/nope/pad/content", headers=host.headers)).status == 404
