"""Two web instances on one MongoDB and one Redis: reads cached on one see writes made on the other."""

from __future__ import annotations

from hireflow.web.app import create_app
from tests.conftest import Factory, serve


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
