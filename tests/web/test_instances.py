"""Two web instances on one MongoDB and one Redis: reads cached on one see writes made on the other."""

from __future__ import annotations

from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.proxy import TcpProxy
from tests.support.workers import eventually


async def test_reads_on_b_see_writes_on_a(client, settings, factory: Factory, redis):
    other = await serve(create_app(settings))
    try:
        host, guest = await factory.user("host"), await factory.user("guest")

        async def active_on_b():
            resp = await other.get("/api/sessions/active", headers=host.headers)
            assert resp.status == 200
            return (await resp.json())["sessions"]

        assert await active_on_b() == []
        assert await active_on_b() == []  # now cached on B
        created = await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
        session = (await created.json())["session"]
        assert [s["_id"] for s in await active_on_b()] == [session["_id"]]

        url = f"/api/sessions/{session['_id']}"
        assert (await (await other.get(url, headers=host.headers)).json())["session"]["participant"] is None
        assert (await client.post(url + "/join", headers=guest.headers)).status == 200
        on_b = (await (await other.get(url, headers=host.headers)).json())["session"]
        assert on_b["participant"]["clerkId"] == guest.doc["clerkId"]

        assert (await client.post(url + "/end", headers=host.headers)).status == 200
        assert await active_on_b() == []
        recent = await (await other.get("/api/sessions/my-recent", headers=guest.headers)).json()
        assert [s["_id"] for s in recent["sessions"]] == [session["_id"]]
    finally:
        await other.close()


async def test_a_redis_restarted_empty_invalidates_caches(client, factory: Factory, redis, mongo):
    host = await factory.user("host")
    for _ in range(2):
        assert (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"] == []
    # A write that bypassed the version bump (as if Redis had lost it) followed by Redis losing its keys.
    await mongo.sessions.insert_one(
        {
            "problem": "P",
            "difficulty": "easy",
            "host": host.doc["_id"],
            "participant": None,
            "status": "active",
            "callId": "session_x",
            "streamStatus": "pending",
            "createdAt": None,
            "updatedAt": None,
            "endedAt": None,
        }
    )
    await redis.flushall()
    sessions = (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"]
    assert [s["callId"] for s in sessions] == ["session_x"]


async def test_user_changes_elsewhere_are_seen(client, factory: Factory, mongo, settings):
    from hireflow import keys
    from hireflow.cache import CacheVersions

    host = await factory.user("host")
    await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
    first = (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"]
    assert first[0]["host"]["name"] == "Host"
    await mongo.users.update_one({"_id": host.doc["_id"]}, {"$set": {"name": "Renamed"}})
    from redis.asyncio import Redis

    r = Redis.from_url(settings.redis_url, decode_responses=True)
    await CacheVersions(r).bump(keys.USERS_VERSION)  # what the user sync does after an update
    await r.aclose()
    after = (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"]
    assert after[0]["host"]["name"] == "Renamed"


async def test_a_version_bump_that_failed_is_retried(infra, db_name, fake_clerk, client, factory: Factory):
    """A writes while Redis is unreachable for it only: A reads through meanwhile, and once Redis
    answers the bump lands and B's cached list shows the write (long before the cache's max age)."""
    proxy = await TcpProxy(infra.redis_port).start()
    overrides = {"cache_max_age_s": 600.0, "rt_repair_interval_s": 0.2, "rt_bus_heartbeat_s": 0.2}
    a = await serve(
        create_app(
            make_settings(infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{proxy.port}/0", **overrides)
        )
    )
    b = client
    try:
        host = await factory.user("host")

        async def active(on):
            resp = await on.get("/api/sessions/active", headers=host.headers)
            assert resp.status == 200
            return [s["problem"] for s in (await resp.json())["sessions"]]

        for on in (a, b, a, b):
            assert await active(on) == []  # cached on both
        proxy.cut()
        created = await a.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
        assert created.status == 201
        assert await active(a) == ["P"]  # the writer reads through while its bump is pending
        assert await active(b) == []  # B cannot know yet
        proxy.restore()

        async def b_sees_it():
            return await active(b) == ["P"]

        await eventually(b_sees_it, timeout_s=5)
    finally:
        await a.close()
        await proxy.close()
