"""Dependencies failing under the running app: MongoDB down is 503, Redis down only costs the cache."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from pymongo import AsyncMongoClient

from hireflow import embedded
from hireflow.store.mongo import Document
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


async def test_mongodb_restart_under_load(infra, fake_clerk, redis, factory: Factory, tmp_path, capsys):
    """SecantusDB stopped and started again on the same port while hosts create, guests join, hosts end:
    no 500, every 503 says when to retry, every acknowledged change is stored, none half-applied."""
    port = embedded.free_port()
    storage = str(tmp_path / "db")
    process = embedded.start_mongo(port=port, storage_path=storage)
    embedded.wait_for_port(port, process)
    url = f"mongodb://127.0.0.1:{port}/restart?directConnection=true"
    settings = make_settings(infra, "restart", *fake_clerk, mongo_timeout_ms=1500).model_copy(update={"db_url": url})
    client = await serve(create_app(settings))
    answers: list[tuple[str, int, str | None]] = []
    created: set[str] = set()
    joined: set[str] = set()
    ended: set[str] = set()
    stop = asyncio.Event()

    async def call(method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
        resp = await client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        answers.append((path, resp.status, resp.headers.get("Retry-After")))
        return resp.status, await resp.json()

    async def load(host: str, guest: str) -> None:
        while not stop.is_set():
            status, body = await call("POST", "/api/sessions", host, json={"problem": "P", "difficulty": "easy"})
            await call("GET", "/api/sessions/active", guest)
            if status != 201:
                await asyncio.sleep(0.1)
                continue
            sid = body["session"]["_id"]
            created.add(sid)
            if (await call("POST", f"/api/sessions/{sid}/join", guest))[0] == 200:
                joined.add(sid)
            if (await call("POST", f"/api/sessions/{sid}/end", host))[0] == 200:
                ended.add(sid)

    users = [factory.clerk_only(f"u{i}")[1] for i in range(4)]
    loops = [asyncio.create_task(load(users[i], users[i + 1])) for i in (0, 2)]
    try:
        await asyncio.sleep(1.0)
        embedded.stop(process)
        await asyncio.sleep(1.0)
        process = embedded.start_mongo(port=port, storage_path=storage)
        embedded.wait_for_port(port, process)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*loops)

        assert not [a for a in answers if a[1] >= 500 and a[1] != 503], "a 5xx other than 503"
        assert all(retry == "2" for _, status, retry in answers if status == 503), "a 503 without Retry-After"
        db: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
        try:
            docs = {str(d["_id"]): d async for d in db.restart.sessions.find({})}
        finally:
            await db.close()
        assert created <= set(docs), "an acknowledged create was lost"
        for sid in joined:
            assert docs[sid]["participant"] is not None, "an acknowledged join was lost"
        for sid in ended:
            assert docs[sid]["status"] == "completed", "an acknowledged end was lost"
        for doc in docs.values():  # each change is one statement: all of it or nothing
            assert (doc["status"] == "completed") == (doc["endedAt"] is not None), doc
            assert doc["rev"] == 1 + (doc["participant"] is not None) + (doc["status"] == "completed"), doc
        with capsys.disabled():
            print(
                f"\nSecantusDB restarted under load: {len(answers)} requests, "
                f"{sum(1 for a in answers if a[1] == 503)} got 503 (all with Retry-After), "
                f"{len(created)} creates, {len(joined)} joins, {len(ended)} ends acknowledged and stored"
            )
    finally:
        stop.set()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await client.close()
        embedded.stop(process)
