"""WebSocket quotas: sockets per user (across instances), subscriptions per socket, and a subscribe
to a session that does not exist leaves nothing in Redis."""

from __future__ import annotations

import asyncio

from hireflow.realtime.protocol import CLOSE_POLICY
from hireflow.web.app import create_app
from tests.conftest import Factory, serve
from tests.support.ws import WsFactory


async def test_websockets_per_user_across_instances(settings, redis, mongo, factory: Factory, ws_client: WsFactory):
    limited = settings.model_copy(update={"quota_ws_per_user": 2})
    a, b = await serve(create_app(limited)), await serve(create_app(limited))
    try:
        user, other = await factory.user("user"), await factory.user("other")
        first = await ws_client(a, user.token)
        await ws_client(b, user.token)
        refused = await ws_client(b, user.token, expect_ready=False)
        frame = await refused.recv()
        assert frame == {"type": "error", "code": "rate_limited", "message": "Too many WebSockets (at most 2 per user)"}
        assert await refused.closed() == CLOSE_POLICY
        await ws_client(a, other.token)  # per user
        await first.close()
        for _ in range(100):  # the seat is released once the server has seen the close
            if await redis.zcard(f"hireflow:quota:ws:{user.doc['clerkId']}") < 2:
                break
            await asyncio.sleep(0.05)
        again = await ws_client(a, user.token)
        assert (await again.subscribe("lobby"))["type"] == "snapshot"
    finally:
        await a.close()
        await b.close()


async def test_subscriptions_per_socket(settings, redis, mongo, factory: Factory, ws_client: WsFactory):
    app = await serve(create_app(settings.model_copy(update={"quota_subs_per_socket": 2})))
    try:
        host = await factory.user("host")
        ids = []
        for _ in range(3):
            resp = await app.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
            ids.append((await resp.json())["session"]["_id"])
        ws = await ws_client(app, host.token)
        await ws.subscribe("lobby")
        await ws.subscribe(f"session:{ids[0]}")
        await ws.send({"type": "subscribe", "topic": f"session:{ids[1]}"})
        error = await ws.recv_type("error")
        assert error == {
            "type": "error",
            "code": "rate_limited",
            "message": "Too many subscriptions (at most 2 per socket)",
        }
        await ws.send({"type": "ping"})
        assert (await ws.recv_type("pong"))["type"] == "pong", "the socket is kept"
        assert (await ws.subscribe(f"session:{ids[0]}"))["type"] == "snapshot", "re-subscribing is not a new one"
        await ws.send({"type": "unsubscribe", "topic": "lobby"})
        assert (await ws.subscribe(f"session:{ids[2]}"))["session"]["_id"] == ids[2]
    finally:
        await app.close()


async def test_subscribing_to_a_missing_session_creates_nothing_in_redis(
    client, redis, factory: Factory, ws_client: WsFactory
):
    user = await factory.user("user")
    ws = await ws_client(client, user.token)
    await ws.subscribe("lobby")
    before = set(await redis.keys("hireflow:rt:*"))
    for i in range(20):
        await ws.send({"type": "subscribe", "topic": f"session:{i:024x}"})
        assert (await ws.recv_type("error"))["code"] == "not_found"
    assert set(await redis.keys("hireflow:rt:*")) == before
