"""Per-user quotas (hireflow/quotas.py and the active-session cap): 429 + Retry-After, shared by
instances through the real Redis, failing open when Redis is down."""

from __future__ import annotations

import asyncio

from hireflow import embedded
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve

NEW = {"problem": "Two Sum", "difficulty": "easy"}


async def quota_app(infra, db_name, fake_clerk, **overrides):
    return await serve(create_app(make_settings(infra, db_name, *fake_clerk, **overrides)))


async def assert_rate_limited(resp, message_part: str) -> None:
    assert resp.status == 429, await resp.text()
    body = await resp.json()
    assert body["code"] == "rate_limited" and message_part in body["message"]
    assert int(resp.headers["Retry-After"]) >= 1


async def test_creates_per_hour_shared_by_instances(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    a = await quota_app(infra, db_name, fake_clerk, quota_creates="3/hour")
    b = await quota_app(infra, db_name, fake_clerk, quota_creates="3/hour")
    try:
        user, other = await factory.user("user"), await factory.user("other")
        made = [await (a if i % 2 else b).post("/api/sessions", json=NEW, headers=user.headers) for i in range(3)]
        assert [r.status for r in made] == [201, 201, 201]
        sid = (await made[0].json())["session"]["_id"]
        await a.post(f"/api/sessions/{sid}/end", headers=user.headers)  # the active cap is not what stops it
        resp = await b.post("/api/sessions", json=NEW, headers=user.headers)
        await assert_rate_limited(resp, "Too many sessions created")
        assert 3000 <= int(resp.headers["Retry-After"]) <= 3600
        assert (await a.post("/api/sessions", json=NEW, headers=other.headers)).status == 201, "per user"
        assert await redis.keys("hireflow:quota:*"), "kept in the shared Redis"
    finally:
        await a.close()
        await b.close()


async def test_at_most_three_active_hosted_sessions(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    client = await quota_app(infra, db_name, fake_clerk, quota_active_sessions=3)
    try:
        host = await factory.user("host")
        ids = []
        for _ in range(3):
            resp = await client.post("/api/sessions", json=NEW, headers=host.headers)
            assert resp.status == 201
            ids.append((await resp.json())["session"]["_id"])
        resp = await client.post("/api/sessions", json=NEW, headers=host.headers)
        await assert_rate_limited(resp, "at most 3 active sessions")
        assert await mongo.sessions.count_documents({"status": "active"}) == 3
        assert (await client.post(f"/api/sessions/{ids[0]}/end", headers=host.headers)).status == 200
        assert (await client.post("/api/sessions", json=NEW, headers=host.headers)).status == 201
    finally:
        await client.close()


async def test_concurrent_creates_never_exceed_the_active_cap(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory
):
    a = await quota_app(infra, db_name, fake_clerk, quota_active_sessions=3)
    b = await quota_app(infra, db_name, fake_clerk, quota_active_sessions=3)
    try:
        host = await factory.user("host")
        responses = await asyncio.gather(
            *((a if i % 2 else b).post("/api/sessions", json=NEW, headers=host.headers) for i in range(8))
        )
        statuses = sorted(r.status for r in responses)
        assert set(statuses) <= {201, 429}
        active = await mongo.sessions.count_documents({"host": host.doc["_id"], "status": "active"})
        assert active == statuses.count(201) <= 3
        # A burst may refuse more than it had to (every racer that saw too many backs out), never leave the
        # cap stuck: once the burst is over, creates succeed up to the cap.
        for _ in range(3 - active):
            assert (await a.post("/api/sessions", json=NEW, headers=host.headers)).status == 201
        assert (await b.post("/api/sessions", json=NEW, headers=host.headers)).status == 429
    finally:
        await a.close()
        await b.close()


async def test_joins_chat_tokens_and_other_writes(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    client = await quota_app(
        infra, db_name, fake_clerk, quota_joins="2/minute", quota_chat_tokens="2/minute", quota_writes="1/minute"
    )
    try:
        host, guest = await factory.user("host"), await factory.user("guest")
        sid = (await (await client.post("/api/sessions", json=NEW, headers=host.headers)).json())["session"]["_id"]
        assert (await client.post(f"/api/sessions/{sid}/join", headers=guest.headers)).status == 200
        assert (await client.post(f"/api/sessions/{sid}/join", headers=guest.headers)).status == 200
        await assert_rate_limited(await client.post(f"/api/sessions/{sid}/join", headers=guest.headers), "join")
        for _ in range(2):
            assert (await client.get("/api/chat/token", headers=guest.headers)).status == 200
        await assert_rate_limited(await client.get("/api/chat/token", headers=guest.headers), "chat token")
        assert (await client.post(f"/api/sessions/{sid}/end", headers=guest.headers)).status == 403
        await assert_rate_limited(await client.post(f"/api/sessions/{sid}/end", headers=guest.headers), "Too many")
        assert (await client.post(f"/api/sessions/{sid}/end", headers=host.headers)).status == 200, "per user"
    finally:
        await client.close()


async def test_quotas_fail_open_when_redis_is_down(infra, db_name, fake_clerk, mongo, factory: Factory):
    dead = embedded.free_port()
    client = await quota_app(
        infra, db_name, fake_clerk, redis_url=f"redis://127.0.0.1:{dead}/0", quota_creates="1/hour"
    )
    try:
        host = await factory.user("host")
        for _ in range(2):
            resp = await client.post("/api/sessions", json=NEW, headers=host.headers)
            assert resp.status == 201, await resp.text()
        metrics = await (await client.get("/metrics")).text()
        assert 'hireflow_quota_unavailable_total{quota="create"} 2.0' in metrics
    finally:
        await client.close()


async def test_quotas_enabled_false_lifts_them(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    client = await quota_app(
        infra, db_name, fake_clerk, quotas_enabled=False, quota_active_sessions=1, quota_creates="1/hour"
    )
    try:
        host = await factory.user("host")
        for _ in range(3):
            assert (await client.post("/api/sessions", json=NEW, headers=host.headers)).status == 201
        assert await redis.keys("hireflow:quota:*") == []
    finally:
        await client.close()
