"""Stream provisioning and teardown through the REST API and real workers, with faults injected."""

from __future__ import annotations

import time

from bson import ObjectId

from hireflow.queue import JobQueue
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.workers import eventually


async def stream_status(mongo, session_id: str) -> str:
    doc = await mongo.sessions.find_one({"_id": ObjectId(session_id)})
    return doc["streamStatus"]


def status_is(mongo, session_id: str, wanted: str):
    async def check():
        return await stream_status(mongo, session_id) == wanted

    return check


async def create_session(client, user, problem="Two Sum"):
    resp = await client.post("/api/sessions", json={"problem": problem, "difficulty": "medium"}, headers=user.headers)
    assert resp.status == 201
    return (await resp.json())["session"]


async def test_create_join_end_through_a_worker_process(client, factory: Factory, fake_stream, mongo, worker_process):
    stream, _ = fake_stream
    proc = worker_process()
    host, guest = await factory.user("host"), await factory.user("guest")
    session = await create_session(client, host)
    assert session["streamStatus"] == "pending", "the response does not wait for Stream"
    call_id, sid = session["callId"], session["_id"]

    await eventually(status_is(mongo, sid, "ready"))
    hid, gid = host.doc["clerkId"], guest.doc["clerkId"]
    call = stream.calls[f"default:{call_id}"]
    assert call["created_by_id"] == hid
    assert call["custom"] == {"sessionId": sid, "problem": "Two Sum", "difficulty": "medium"}
    channel = stream.channels[f"messaging:{call_id}"]
    assert channel == {"cid": f"messaging:{call_id}", "name": "Two Sum Session", "created_by": hid, "members": [hid]}
    assert stream.users[hid]["name"] == "Host" and stream.users[hid]["image"] == host.doc["profileImage"]
    resp = await client.get(f"/api/sessions/{sid}", headers=host.headers)
    assert (await resp.json())["session"]["streamStatus"] == "ready", "the worker's change invalidates web caches"

    assert (await client.post(f"/api/sessions/{sid}/join", headers=guest.headers)).status == 200

    async def guest_is_member():
        return gid in stream.channels[f"messaging:{call_id}"]["members"] and gid in call["members"]

    await eventually(guest_is_member)
    assert gid in stream.users

    assert (await client.post(f"/api/sessions/{sid}/end", headers=host.headers)).status == 200
    await eventually(status_is(mongo, sid, "deleted"))
    assert f"default:{call_id}" not in stream.calls and f"messaging:{call_id}" not in stream.channels
    assert stream.deleted_calls == [f"default:{call_id}"]
    assert stream.deleted_channels == [f"messaging:{call_id}"]
    assert stream.created[f"default:{call_id}"] == 1 and stream.created[f"messaging:{call_id}"] == 1
    doc = await mongo.sessions.find_one({"_id": ObjectId(sid)})
    assert doc["streamDirty"] is False
    assert proc.stop() == 0, proc.output()


async def test_two_500s_then_success(client, factory: Factory, fake_stream, mongo, worker):
    stream, _ = fake_stream
    stream.fail("POST", r"^/api/v2/video/call/default/[^/]+$", status=500, times=2)
    await worker()
    session = await create_session(client, await factory.user("host"))
    await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=20)
    assert stream.created[f"default:{session['callId']}"] == 1


async def test_429_waits_for_the_rate_limit_reset(client, factory: Factory, fake_stream, mongo, worker):
    stream, _ = fake_stream
    reset = int(time.time()) + 2
    stream.fail(
        "POST",
        r"^/api/v2/users$",
        status=429,
        times=1,
        headers={
            "Retry-After": "2",
            "X-RateLimit-Limit": "60",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
    )
    await worker()
    session = await create_session(client, await factory.user("host"))
    await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=20)
    upserts = [t for t, method, path in stream.request_times if (method, path) == ("POST", "/api/v2/users")]
    assert len(upserts) >= 2
    assert upserts[1] - upserts[0] >= 1.9, "retried before the rate limit reset"


async def test_a_hanging_stream_times_out_and_is_retried(client, factory: Factory, fake_stream, mongo, worker):
    stream, _ = fake_stream
    stream.fail("POST", r"^/channels/messaging/[^/]+/query$", status=0, delay_s=10, times=1)
    await worker()
    session = await create_session(client, await factory.user("host"))
    started = time.monotonic()
    await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=20)
    assert time.monotonic() - started < 9, "did not wait for the hung request"
    assert stream.created[f"messaging:{session['callId']}"] == 1


async def test_a_permanent_403_marks_the_session_failed(client, factory: Factory, fake_stream, mongo, worker):
    stream, _ = fake_stream
    stream.fail("POST", r"^/api/v2/video/call/", status=403, times=100)
    await worker()
    host = await factory.user("host")
    session = await create_session(client, host)
    await eventually(status_is(mongo, session["_id"], "failed"))
    doc = await mongo.sessions.find_one({"_id": ObjectId(session["_id"])})
    assert "403" in doc["streamError"]
    assert doc["streamDirty"] is False, "a permanent failure is not retried forever"
    resp = await client.get(f"/api/sessions/{session['_id']}", headers=host.headers)
    assert (await resp.json())["session"]["streamStatus"] == "failed"
    stream.faults.pending.clear()
    assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200
    await eventually(status_is(mongo, session["_id"], "deleted"))


async def test_redis_down_during_create_is_healed_by_the_reconciler(
    infra, db_name, fake_clerk, settings, mongo, redis, factory: Factory, fake_stream, worker
):
    from hireflow import embedded

    dead_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{embedded.free_port()}/0"})
    client = await serve(create_app(dead_redis))
    try:
        host = await factory.user("host")
        session = await create_session(client, host)
        queued = await redis.zrange("hireflow:queue", 0, -1)
        assert not any(session["_id"] in job for job in queued), "the enqueue should have failed"
    finally:
        await client.close()
    await worker()
    await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=20)


async def test_a_worker_killed_mid_job_is_finished_by_another(
    client, factory: Factory, fake_stream, mongo, worker_process
):
    stream, _ = fake_stream
    stream.fail("POST", r"^/channels/messaging/[^/]+/query$", status=0, delay_s=30, times=1)
    first = worker_process()
    session = await create_session(client, await factory.user("host"))

    async def hanging_in_channel_create():
        return any(p.startswith("/channels/") for _m, p in stream.requests)

    await eventually(hanging_in_channel_create)
    first.kill()
    second = worker_process()
    await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=40)
    assert stream.created[f"messaging:{session['callId']}"] == 1
    assert second.stop() == 0


async def test_the_same_job_enqueued_five_times_makes_one_call_and_one_channel(
    client, factory: Factory, fake_stream, mongo, worker, settings
):
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    stream, _ = fake_stream
    stream.fail("POST", r"^/api/v2/video/call/default/[^/]+$", status=0, delay_s=0.3, times=100)
    session = await create_session(client, await factory.user("host"))
    pool = ConnectionPool.from_url(settings.redis_url)
    queue = JobQueue(ArqRedis(pool))
    for reason in ("created", "created", "again", "again2", "again3"):
        await queue.sync_session(session["_id"], reason)
    await worker()
    await worker()
    await eventually(status_is(mongo, session["_id"], "ready"))
    await pool.aclose()
    cid = session["callId"]
    assert stream.created[f"default:{cid}"] == 1 and stream.created[f"messaging:{cid}"] == 1
    assert stream.max_in_flight[cid] == 1, "two workers provisioned one session at the same time"


async def test_teardown_of_resources_that_never_existed_succeeds(client, factory: Factory, fake_stream, mongo, worker):
    stream, _ = fake_stream
    stream.fail("POST", r"^/api/v2/users$", status=503, times=1000)
    host = await factory.user("host")
    session = await create_session(client, host)
    assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200
    await worker()
    await eventually(status_is(mongo, session["_id"], "deleted"))
    assert stream.created[f"default:{session['callId']}"] == 0


async def test_without_stream_keys_sessions_are_disabled(
    infra, db_name, fake_clerk, mongo, redis, factory: Factory, worker
):
    from tests.conftest import FAST_WORKER

    settings = make_settings(infra, db_name, *fake_clerk, stream_api_key=None, stream_api_secret=None, **FAST_WORKER)
    client = await serve(create_app(settings))
    try:
        await worker(settings)
        session = await create_session(client, await factory.user("host"))
        assert session["streamStatus"] == "disabled"  # from the first response, no pending step
        await eventually(status_is(mongo, session["_id"], "disabled"))
    finally:
        await client.close()


async def test_stream_user_jobs(client, factory: Factory, fake_stream, worker, settings):
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    stream, _ = fake_stream
    user = await factory.user("alice")
    pool = ConnectionPool.from_url(settings.redis_url)
    queue = JobQueue(ArqRedis(pool))
    await worker()
    clerk_id = user.doc["clerkId"]
    await queue.upsert_stream_user(clerk_id)
    await eventually(lambda: _true(clerk_id in stream.users))
    assert stream.users[clerk_id]["name"] == "Alice"
    await queue.delete_stream_user(clerk_id)
    await eventually(lambda: _true(clerk_id in stream.deleted_users))
    await pool.aclose()


async def _true(value: bool) -> bool:
    return value
