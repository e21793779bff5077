"""Dependencies failing under the running app: MongoDB down is 503, Redis down only costs the cache."""

from __future__ import annotations

import tempfile

from hireflow import embedded
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve


async def test_mongodb_down_is_503_and_ready_names_it(infra, fake_clerk, redis, factory: Factory):
    port = embedded.free_port()
    process = embedded.start_mongo(port=port, storage_path=":memory:")
    embedded.wait_for_port(port, process)
    settings = make_settings(infra, "down", *fake_clerk, mongo_timeout_ms=800)
    settings = settings.model_copy(update={"db_url": f"mongodb://127.0.0.1:{port}/down?directConnection=true"})
    client = await serve(create_app(settings))
    try:
        _clerk_id, token = factory.clerk_only("late")
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/sessions/active", headers=headers)).status == 200
        embedded.stop(process)
        for method, path in (("GET", "/api/sessions/active"), ("POST", "/api/sessions")):
            resp = await client.request(method, path, headers=headers, json={"problem": "P", "difficulty": "easy"})
            assert resp.status == 503, path
            assert (await resp.json())["message"] == "Service unavailable"
        resp = await client.get("/health/ready")
        assert resp.status == 503
        assert (await resp.json())["message"] == "Service unavailable: mongodb"
    finally:
        await client.close()
        embedded.stop(process)


async def test_redis_down_serves_from_mongodb(infra, db_name, fake_clerk, mongo, factory: Factory):
    dead = embedded.free_port()
    settings = make_settings(infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{dead}/0")
    client = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        resp = await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
        assert resp.status == 201
        for _ in range(2):
            sessions = (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"]
            assert [s["problem"] for s in sessions] == ["P"]
        resp = await client.get("/health/ready")
        assert resp.status == 503
        assert (await resp.json())["message"] == "Service unavailable: redis, realtime"
    finally:
        await client.close()


async def test_redis_restart_mid_run(infra, db_name, fake_clerk, mongo, factory: Factory):
    with tempfile.TemporaryDirectory() as tmp:
        port = embedded.free_port()
        process = embedded.start_redis(port=port, directory=tmp)
        embedded.wait_for_port(port, process)
        settings = make_settings(infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{port}/0")
        client = await serve(create_app(settings))
        try:
            host = await factory.user("host")
            assert (await client.get("/api/sessions/active", headers=host.headers)).status == 200
            embedded.stop(process)
            assert (await client.get("/api/sessions/active", headers=host.headers)).status == 200
            process = embedded.start_redis(port=port, directory=tmp)
            embedded.wait_for_port(port, process)
            resp = await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
            assert resp.status == 201
            sessions = (await (await client.get("/api/sessions/active", headers=host.headers)).json())["sessions"]
            assert [s["problem"] for s in sessions] == ["P"]
        finally:
            await client.close()
            embedded.stop(process)
