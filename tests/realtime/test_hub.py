"""The WebSocket hub through real sockets: two instances, one Redis, one MongoDB."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import pytest

from hireflow.realtime.bus import Bus
from hireflow.realtime.protocol import event_body
from hireflow.services.access import public_view
from hireflow.web.app import create_app
from hireflow.web.appkeys import HUB, REDIS, SETTINGS
from tests.conftest import Factory, make_settings, serve
from tests.support.proxy import TcpProxy
from tests.support.workers import stop_worker
from tests.support.ws import StuckClient, WsFactory
from tests.support.wsframes import server_frames


async def create(client, user, problem="Two Sum"):
    resp = await client.post("/api/sessions", json={"problem": problem, "difficulty": "easy"}, headers=user.headers)
    assert resp.status == 201
    return (await resp.json())["session"]


# --- auth -----------------------------------------------------------------------------------------

WS_UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.mark.parametrize("how", ["header", "cookie", "frame"])
async def test_auth_ways(client, factory: Factory, ws_client: WsFactory, how):
    user = await factory.user()
    ws = await ws_client(client, user.token, how=how, expect_ready=False)
    assert await ws.recv() == {"type": "ready", "userId": user.doc["clerkId"]}
    await ws.send({"type": "ping"})
    assert await ws.recv() == {"type": "pong"}


async def test_no_auth_within_the_timeout_is_closed_4001(infra, db_name, fake_clerk, redis, mongo, ws_client):
    app_client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, ws_auth_timeout_s=0.3)))
    try:
        ws = await ws_client(app_client, expect_ready=False)
        assert (await ws.recv())["code"] == "auth_timeout"
        assert await ws.closed() == 4001
    finally:
        await app_client.close()


async def test_bad_token_is_closed_4001(client, ws_client: WsFactory):
    ws = await ws_client(client, "garbage", how="frame", expect_ready=False)
    assert await ws.recv() == {"type": "error", "code": "token_invalid", "message": "Unauthorized - invalid token"}
    assert await ws.closed() == 4001


async def test_subscribe_before_auth_gets_an_error_frame_then_4001(client, ws_client: WsFactory):
    ws = await ws_client(client, expect_ready=False)
    await ws.send({"type": "subscribe", "topic": "lobby"})
    error = await ws.recv()
    assert error["type"] == "error" and error["code"] == "auth_required" and "auth" in error["message"]
    assert await ws.closed() == 4001


async def test_foreign_origin_is_refused_saying_why(client, factory: Factory, ws_client: WsFactory, caplog):
    user = await factory.user()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ws_client(client, user.token, origin="https://evil.example")
    assert refused.value.status == 403
    for origin in ("https://evil.example", "http://127.0.0.1:3000"):  # loopback is not special outside development
        resp = await client.get("/api/ws", headers={**WS_UPGRADE, "Origin": origin})
        assert resp.status == 403
        assert await resp.json() == {
            "message": f"Origin not allowed: '{origin}' is not in CLIENT_URL",
            "code": "origin_not_allowed",
        }
    assert any("upgrade refused" in r.getMessage() and "evil.example" in r.getMessage() for r in caplog.records)


async def test_development_accepts_any_loopback_origin(infra, db_name, fake_clerk, redis, mongo, factory, ws_client):
    app_client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, node_env="development")))
    try:
        user = await factory.user()
        for origin in ("http://127.0.0.1:3000", "http://localhost:8080", "http://[::1]:5000", "http://localhost:5173"):
            ws = await ws_client(app_client, user.token, origin=origin)
            assert (await ws.subscribe("lobby"))["type"] == "snapshot"
            preflight = await app_client.options(
                "/api/sessions", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
            )
            assert preflight.headers.get("Access-Control-Allow-Origin") == origin
        for origin in ("https://evil.example", "http://localhost.evil.example", "http://10.0.0.1:3000"):
            resp = await app_client.get("/api/ws", headers={**WS_UPGRADE, "Origin": origin})
            assert resp.status == 403
            assert (await resp.json())["message"].endswith("is not in CLIENT_URL and is not a loopback origin")
            answer = await app_client.get("/api/health", headers={"Origin": origin})
            assert "Access-Control-Allow-Origin" not in answer.headers
    finally:
        await app_client.close()


async def test_token_refresh_extends_and_expiry_closes_4001(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory, ws_client: WsFactory, signing_key
):
    app_client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, ws_token_grace_s=1.0)))
    try:
        user = await factory.user()
        clerk_id = user.doc["clerkId"]
        short = signing_key.mint(clerk_id, ttl_s=1)
        refreshed_ws = await ws_client(app_client, short)
        expiring_ws = await ws_client(app_client, short)
        await refreshed_ws.send({"type": "auth", "token": signing_key.mint(clerk_id, ttl_s=60)})
        assert await refreshed_ws.recv() == {"type": "auth_ok"}
        expires_at = jwt.decode(short, options={"verify_signature": False})["exp"]
        assert await expiring_ws.closed(timeout_s=10) == 4001
        assert time.time() >= expires_at + 1.0 - 0.05, "closed before the grace period ran out"
        await refreshed_ws.send({"type": "ping"})
        assert await refreshed_ws.recv() == {"type": "pong"}, "the refreshed connection stays open"
    finally:
        await app_client.close()


async def test_refresh_with_another_users_token_closes(client, factory: Factory, ws_client: WsFactory):
    alice, bob = await factory.user("alice"), await factory.user("bob")
    ws = await ws_client(client, alice.token)
    await ws.send({"type": "auth", "token": bob.token})
    assert (await ws.recv())["type"] == "error"
    assert await ws.closed() == 4001


# --- protocol errors ----------------------------------------------------------------------------


async def test_bad_frames_get_errors_and_the_connection_stays(client, factory: Factory, ws_client: WsFactory):
    ws = await ws_client(client, (await factory.user()).token)
    for bad in (
        "nope",
        "[]",
        '{"type":"dance"}',
        '{"type":"subscribe","topic":"session:xyz"}',
        '{"type":"subscribe","topic":"lobby","since":-1}',
    ):
        await ws.ws.send_str(bad)
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] and frame["message"], (bad, frame)
    await ws.send({"type": "subscribe", "topic": "session:0123456789abcdef01234567"})
    assert await ws.recv() == {"type": "error", "code": "not_found", "message": "Session not found"}
    await ws.send({"type": "ping"})
    assert await ws.recv() == {"type": "pong"}


async def test_inbound_frame_over_16_kib_closes_1009(client, factory: Factory, ws_client: WsFactory):
    ws = await ws_client(client, (await factory.user()).token)
    await ws.ws.send_str('{"type":"ping","pad":"' + "x" * 17000 + '"}')
    assert await ws.closed() == 1009


# --- fan-out across instances -------------------------------------------------------------------


async def test_lobby_and_session_events_cross_instances(client, second, factory: Factory, ws_client: WsFactory):
    host, guest = await factory.user("host"), await factory.user("guest")
    lobby_b = await ws_client(second, host.token)
    snapshot = await lobby_b.subscribe("lobby")
    assert snapshot["sessions"] == [] and snapshot["topic"] == "lobby"
    epoch, seq = snapshot["epoch"], snapshot["seq"]

    session = await create(client, host)  # through instance A
    created = await lobby_b.recv_type("event")
    assert created == {
        "type": "event",
        "topic": "lobby",
        "epoch": epoch,
        "seq": seq + 1,
        "event": "session.created",
        "session": public_view(session),
    }

    room_b = await ws_client(second, guest.token)
    room = await room_b.subscribe(f"session:{session['_id']}")
    assert room["session"]["_id"] == session["_id"] and room["epoch"]

    assert (await client.post(f"/api/sessions/{session['_id']}/join", headers=guest.headers)).status == 200
    joined = await lobby_b.recv_type("event")
    assert (joined["seq"], joined["event"]) == (seq + 2, "session.updated")
    assert joined["session"]["participant"]["clerkId"] == guest.doc["clerkId"]
    room_joined = await room_b.recv_type("event")
    assert room_joined["event"] == "session.updated" and room_joined["seq"] == room["seq"] + 1

    assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200
    ended = await lobby_b.recv_type("event")
    assert (ended["seq"], ended["event"], ended["session"]["status"]) == (seq + 3, "session.ended", "completed")
    assert (await room_b.recv_type("event"))["event"] == "session.ended"
    assert lobby_b.ws.closed is False and epoch == snapshot["epoch"]


async def test_snapshot_is_what_the_rest_api_returns(client, factory: Factory, ws_client: WsFactory):
    host = await factory.user("host")
    for i in range(3):
        await create(client, host, f"P{i}")
    # Snapshots and events carry the public view: what REST gives anyone who is not a member.
    stranger = await factory.user("stranger")
    rest = await (await client.get("/api/sessions/active", headers=stranger.headers)).json()
    ws = await ws_client(client, host.token)
    assert (await ws.subscribe("lobby"))["sessions"] == rest["sessions"]


async def test_sequence_is_shared_by_instances(client, second, factory: Factory, ws_client: WsFactory):
    host = await factory.user("host")
    ws = await ws_client(client, host.token)
    start = (await ws.subscribe("lobby"))["seq"]
    for i in range(6):
        await create(client if i % 2 else second, host, f"P{i}")
    seqs = [(await ws.recv_type("event"))["seq"] for _ in range(6)]
    assert seqs == list(range(start + 1, start + 7))


# --- resume ---------------------------------------------------------------------------------------


async def test_resume_replays_exactly_what_was_missed(client, second, factory: Factory, ws_client: WsFactory):
    host = await factory.user("host")
    ws = await ws_client(client, host.token)
    snapshot = await ws.subscribe("lobby")
    await ws.close()
    made = [await create(second, host, f"P{i}") for i in range(3)]
    again = await ws_client(second, host.token)
    await again.send({"type": "subscribe", "topic": "lobby", "epoch": snapshot["epoch"], "since": snapshot["seq"]})
    replayed = [await again.recv() for _ in range(3)]
    assert [f["seq"] for f in replayed] == [snapshot["seq"] + 1, snapshot["seq"] + 2, snapshot["seq"] + 3]
    assert [f["session"]["_id"] for f in replayed] == [s["_id"] for s in made]
    assert all(f["type"] == "event" and f["epoch"] == snapshot["epoch"] for f in replayed)
    made.append(await create(client, host, "live"))
    live = await again.recv()
    assert live["seq"] == snapshot["seq"] + 4 and live["session"]["_id"] == made[-1]["_id"]


async def test_resume_from_another_epoch_resets(client, factory: Factory, ws_client: WsFactory):
    host = await factory.user("host")
    ws = await ws_client(client, host.token)
    await ws.send({"type": "subscribe", "topic": "lobby", "epoch": "not-this-one", "since": 0})
    assert await ws.recv() == {"type": "reset", "topic": "lobby", "reason": "epoch"}
    assert (await ws.recv())["type"] == "snapshot"


async def test_resume_past_the_end_resets_with_reason_since(client, factory: Factory, ws_client: WsFactory):
    host = await factory.user("host")
    ws = await ws_client(client, host.token)
    snapshot = await ws.subscribe("lobby")
    await ws.send({"type": "subscribe", "topic": "lobby", "epoch": snapshot["epoch"], "since": snapshot["seq"] + 5})
    assert await ws.recv() == {"type": "reset", "topic": "lobby", "reason": "since"}
    again = await ws.recv()
    assert again["type"] == "snapshot" and again["epoch"] == snapshot["epoch"]


async def test_resume_beyond_retention_resets(infra, db_name, fake_clerk, redis, mongo, factory, ws_client):
    settings = make_settings(infra, db_name, *fake_clerk, rt_retention_events=2, rt_retention_s=0.001)
    app_client = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        ws = await ws_client(app_client, host.token)
        snapshot = await ws.subscribe("lobby")
        await ws.close()
        for i in range(6):
            await create(app_client, host, f"P{i}")
        again = await ws_client(app_client, host.token)
        await again.send({"type": "subscribe", "topic": "lobby", "epoch": snapshot["epoch"], "since": snapshot["seq"]})
        assert await again.recv() == {"type": "reset", "topic": "lobby", "reason": "retention"}
        fresh = await again.recv()
        assert fresh["type"] == "snapshot" and fresh["seq"] == snapshot["seq"] + 6 and len(fresh["sessions"]) == 6
    finally:
        await app_client.close()


# --- slow consumers ---------------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_conflated_or_closed(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory, ws_client: WsFactory
):
    settings = make_settings(infra, db_name, *fake_clerk, ws_queue_max=64, ws_send_timeout_s=2.0)
    app_client = await serve(create_app(settings))
    stuck = None
    try:
        host = await factory.user("host")
        stuck = await StuckClient.connect(app_client, host.token)
        stuck.send({"type": "subscribe", "topic": "lobby"})
        healthy = await ws_client(app_client, host.token)
        await healthy.subscribe("lobby")
        hub = app_client.app[HUB]
        bus = Bus(app_client.app[REDIS], settings)
        rss_before = _rss_kib()
        session = {"_id": "0" * 24, "problem": "x" * 1500, "status": "active"}
        latencies = []
        for i in range(2000):
            sent = time.perf_counter()
            await bus.publish("lobby", event_body("session.updated", {**session, "n": i}))
            if i % 100 == 0:
                frame = await healthy.recv_type("event")
                while frame["session"]["n"] != i:
                    frame = await healthy.recv_type("event")
                latencies.append(time.perf_counter() - sent)
            conns = [c for users in hub._by_user.values() for c in users]
            assert all(len(c._queue or ()) <= 2 * settings.ws_queue_max for c in conns), "queue grew past its bound"
        assert max(latencies) < 0.5, f"the healthy client waited: {latencies}"
        assert hub.stats.resets_slow + hub.stats.closed_slow >= 1, hub.stats
        assert _rss_kib() - rss_before < 50 * 1024, "memory grew with the backlog"

        received = await stuck.read_all(timeout_s=8)
        assert b'"type":"reset","topic":"lobby","reason":"slow"' in received or b"\x03\xf5" in received, (
            "the stalled client got neither reset nor 1013"
        )
    finally:
        if stuck is not None:
            stuck.close()
        await app_client.close()


async def test_nothing_follows_the_close_frame(client, factory: Factory):
    """A connection the server is closing gets no event after its close frame, even while the close
    handshake waits for a client that does not answer it."""
    host = await factory.user("host")
    raw = await StuckClient.connect(client, host.token)
    try:
        raw.send({"type": "subscribe", "topic": "lobby"})
        received = b""
        while not any(b'"type":"snapshot"' in payload for _, payload in server_frames(received)):
            received += await asyncio.wait_for(raw.reader.read(65536), 5)
        client.app[HUB].close_user(host.doc["clerkId"], 4001, "user deleted")
        await asyncio.sleep(0.05)
        bus = Bus(client.app[REDIS], client.app[SETTINGS])
        for i in range(3):
            await bus.publish("lobby", event_body("session.created", {"_id": "0" * 24, "n": i}))
        frames = server_frames(received + await raw.read_all(timeout_s=1.0))
        closes = [i for i, (opcode, _) in enumerate(frames) if opcode == 0x8]
        assert closes, frames
        assert frames[closes[0]][1][:2] == (4001).to_bytes(2, "big")
        assert closes[0] == len(frames) - 1, f"frames after the close frame: {frames[closes[0] + 1 :]}"
    finally:
        raw.close()


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- control, shutdown, outages -------------------------------------------------------------------


async def test_a_deleted_user_is_disconnected_on_every_instance(client, second, factory, ws_client: WsFactory):
    user, other = await factory.user("gone"), await factory.user("stays")
    on_a, on_b = await ws_client(client, user.token), await ws_client(second, user.token)
    bystander = await ws_client(second, other.token)
    started = time.monotonic()
    await client.app[HUB].disconnect_user(user.doc["clerkId"])
    assert await on_a.closed(timeout_s=1) == 4001
    assert await on_b.closed(timeout_s=1) == 4001
    assert time.monotonic() - started < 1.0
    await bystander.send({"type": "ping"})
    assert await bystander.recv() == {"type": "pong"}


async def test_shutdown_closes_with_1001(settings, redis, mongo, factory: Factory, ws_client: WsFactory):
    app_client = await serve(create_app(settings))
    ws = await ws_client(app_client, (await factory.user()).token)
    await ws.subscribe("lobby")
    closing = asyncio.create_task(ws.closed())
    await app_client.close()
    assert await closing == 1001


async def test_stream_status_changes_reach_the_session_room(
    client, factory: Factory, ws_client: WsFactory, fake_stream
):
    host = await factory.user("host")
    session = await create(client, host)
    room = await ws_client(client, host.token)
    snap = await room.subscribe(f"session:{session['_id']}")
    assert snap["session"]["streamStatus"] == "pending"
    from hireflow.workers.app import create_worker

    worker = create_worker(client.app[SETTINGS], handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        frame = await room.recv_type("event", timeout_s=10)
        assert frame["event"] == "session.updated" and frame["session"]["streamStatus"] == "ready"
        assert frame["seq"] == snap["seq"] + 1
    finally:
        await stop_worker(worker, task)


async def test_redis_restart_resets_instead_of_a_silent_gap(
    infra, db_name, fake_clerk, mongo, factory: Factory, ws_client: WsFactory, tmp_path
):
    from hireflow import embedded

    port = embedded.free_port()
    redis_proc = embedded.start_redis(port=port, directory=str(tmp_path))
    embedded.wait_for_port(port, redis_proc)
    settings = make_settings(
        infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{port}/0", rt_bus_heartbeat_s=0.2
    )
    app_client = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        connected = await ws_client(app_client, host.token)
        before = await connected.subscribe("lobby")
        await create(app_client, host, "before")
        assert (await connected.recv_type("event"))["seq"] == before["seq"] + 1

        embedded.stop(redis_proc)
        redis_proc = embedded.start_redis(port=port, directory=str(tmp_path))
        embedded.wait_for_port(port, redis_proc)

        async def ready():
            return (await app_client.get("/health/ready")).status == 200

        from tests.support.workers import eventually

        await eventually(ready, timeout_s=10)
        await create(app_client, host, "after")
        reset = await connected.recv_type("reset")
        assert reset == {"type": "reset", "topic": "lobby", "reason": "epoch"}
        snapshot = await connected.recv_type("snapshot")
        assert snapshot["epoch"] != before["epoch"]
        assert {s["problem"] for s in snapshot["sessions"]} >= {"before"}

        resumer = await ws_client(app_client, host.token)
        await resumer.send({"type": "subscribe", "topic": "lobby", "epoch": before["epoch"], "since": before["seq"]})
        assert await resumer.recv() == {"type": "reset", "topic": "lobby", "reason": "epoch"}
        fresh = await resumer.recv()
        assert fresh["type"] == "snapshot" and {s["problem"] for s in fresh["sessions"]} == {"before", "after"}

        await create(app_client, host, "flowing")
        for client_ws in (connected, resumer):
            frame = await client_ws.recv_type("event")
            assert frame["session"]["problem"] in ("after", "flowing")
    finally:
        await app_client.close()
        embedded.stop(redis_proc)


async def test_a_change_that_could_not_be_published_resets_its_subscribers(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory, ws_client: WsFactory
):
    """Redis unreachable (but keeping its data) while a session is created: once it answers again,
    lobby subscribers and resuming clients are reset to a snapshot that has the session."""
    proxy = await TcpProxy(infra.redis_port).start()
    settings = make_settings(
        infra,
        db_name,
        *fake_clerk,
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        rt_bus_heartbeat_s=0.2,
        rt_repair_interval_s=0.2,
    )
    app_client = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        connected = await ws_client(app_client, host.token)
        before = await connected.subscribe("lobby")

        proxy.cut()
        await create(app_client, host, "made while Redis was unreachable")  # stored; the publish fails
        metrics = await (await app_client.get("/metrics")).text()
        assert 'hireflow_deferred_redis_writes_total{operation="publish"} 2.0' in metrics  # lobby + session topic
        assert 'hireflow_deferred_redis_writes_total{operation="cache_bump"} 1.0' in metrics
        proxy.restore()

        assert await connected.recv_type("reset") == {"type": "reset", "topic": "lobby", "reason": "epoch"}
        snapshot = await connected.recv_type("snapshot")
        assert snapshot["epoch"] != before["epoch"]
        assert [s["problem"] for s in snapshot["sessions"]] == ["made while Redis was unreachable"]

        resumer = await ws_client(app_client, host.token)
        await resumer.send({"type": "subscribe", "topic": "lobby", "epoch": before["epoch"], "since": before["seq"]})
        assert await resumer.recv() == {"type": "reset", "topic": "lobby", "reason": "epoch"}
        assert len((await resumer.recv())["sessions"]) == 1

        await create(app_client, host, "after")
        for client_ws in (connected, resumer):
            frame = await client_ws.recv_type("event")
            assert (frame["session"]["problem"], frame["seq"]) == ("after", snapshot["seq"] + 1)
    finally:
        await app_client.close()
        await proxy.close()


async def test_events_missed_while_the_bus_reconnects_are_replayed(
    client, factory: Factory, ws_client: WsFactory, redis
):
    host = await factory.user("host")
    ws = await ws_client(client, host.token)
    start = (await ws.subscribe("lobby"))["seq"]
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for i in range(3):
        await create(client, host, f"P{i}")  # published while this instance's listener reconnects
    frames = [await ws.recv(timeout_s=10) for _ in range(3)]
    assert [(f["type"], f["seq"]) for f in frames] == [("event", start + 1), ("event", start + 2), ("event", start + 3)]


async def test_a_client_that_closes_before_auth_is_let_go(client, ws_client: WsFactory, caplog):
    ws = await ws_client(client, expect_ready=False)
    await ws.ws.close()
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no error for a client that left"
