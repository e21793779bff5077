"""Code runs through the API: configuration, validation, membership, limits, runtimes, and the live
events both people see (with a worker executing against the Piston fake over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from bson import ObjectId

from hireflow.settings import Settings
from hireflow.store.runs import RunRepo
from hireflow.web.app import create_app
from tests.conftest import Factory, serve
from tests.support.runs import finished, open_session, post_run
from tests.support.ws import WsClient


@pytest.fixture
async def run_client(piston_settings: Settings, redis: Any, mongo: Any) -> AsyncIterator[TestClient]:
    client = await serve(create_app(piston_settings))
    yield client
    await client.close()


async def run_event(ws: WsClient) -> dict[str, Any]:
    """The next `run.*` event frame (the worker's Stream sync also sends `session.updated` meanwhile)."""
    while True:
        frame = await ws.recv_type("event", timeout_s=15)
        if frame["event"].startswith("run."):
            return frame


async def client_with(settings: Settings, **overrides: Any) -> TestClient:
    return await serve(create_app(settings.model_copy(update=overrides)))


async def test_without_piston_url_runs_are_not_configured(client, factory: Factory):
    session_id, host, _ = await open_session(client, factory)
    resp = await client.post(
        f"/api/sessions/{session_id}/runs", json={"language": "python", "code": "1"}, headers=host.headers
    )
    assert resp.status == 503
    assert (await resp.json())["message"] == "Code execution is not configured"
    resp = await client.get("/api/runtimes", headers=host.headers)
    assert resp.status == 200 and await resp.json() == []


async def test_a_run_is_executed_and_both_people_see_it_live(
    run_client, factory, worker, piston_settings, ws_client, mongo
):
    session_id, host, guest = await open_session(run_client, factory)
    topic = f"session:{session_id}"
    watchers = [await ws_client(run_client, host.token), await ws_client(run_client, guest.token)]
    snapshots = [await ws.subscribe(topic) for ws in watchers]
    await worker(piston_settings)

    run = await post_run(run_client, session_id, host, "print:hello\nstdin", stdin="from stdin\n")
    assert run["by"] == {"_id": host.id, "name": "Host"} and run["language"] == "python"
    assert run["version"] == "*", "no runtime list known yet: the engine picks the version"

    for ws, snapshot in zip(watchers, snapshots, strict=True):
        frames = [await run_event(ws) for _ in range(3)]
        assert [f["event"] for f in frames] == ["run.queued", "run.started", "run.finished"]
        assert snapshot["seq"] < frames[0]["seq"] < frames[1]["seq"] < frames[2]["seq"]
        assert all(f["run"]["_id"] == run["_id"] for f in frames)
        done = frames[-1]["run"]
        assert done["status"] == "succeeded" and done["stdout"] == "hello\nfrom stdin\n"
        assert done["exitCode"] == 0 and done["signal"] is None and done["truncated"] is False
        assert done["version"] == "3.10.0" and isinstance(done["durationMs"], int) and done["finishedAt"]

    for user in (host, guest):
        resp = await run_client.get(f"/api/sessions/{session_id}/runs", headers=user.headers)
        assert resp.status == 200
        runs = (await resp.json())["runs"]
        assert [r["_id"] for r in runs] == [run["_id"]] and runs[0]["status"] == "succeeded"
        assert "code" not in runs[0] and "stdin" not in runs[0]


async def test_resuming_subscribers_get_the_run_events_they_missed(
    run_client, factory, worker, piston_settings, ws_client, mongo
):
    session_id, host, _ = await open_session(run_client, factory)
    topic = f"session:{session_id}"
    ws = await ws_client(run_client, host.token)
    snapshot = await ws.subscribe(topic)
    await ws.close()
    await worker(piston_settings)
    run = await post_run(run_client, session_id, host, "print:hi")
    await finished(mongo, run["_id"])
    again = await ws_client(run_client, host.token)
    await again.send({"type": "subscribe", "topic": topic, "epoch": snapshot["epoch"], "since": snapshot["seq"]})
    events = [await run_event(again) for _ in range(3)]
    assert [e["event"] for e in events] == ["run.queued", "run.started", "run.finished"]


async def test_who_may_run_and_see_runs(run_client, factory):
    session_id, host, _ = await open_session(run_client, factory)
    outsider = await factory.user("outsider")
    path = f"/api/sessions/{session_id}/runs"
    resp = await run_client.post(path, json={"language": "python", "code": "x"}, headers=outsider.headers)
    assert resp.status == 403
    assert (await resp.json())["message"] == "Only the host and the participant can run code in this session"
    resp = await run_client.get(path, headers=outsider.headers)
    assert resp.status == 403
    assert (await resp.json())["message"] == "Only the host and the participant can see the runs of this session"
    for bad in ("nope", str(ObjectId())):
        resp = await run_client.post(
            f"/api/sessions/{bad}/runs", json={"language": "python", "code": "x"}, headers=host.headers
        )
        assert resp.status == 404 and (await resp.json())["message"] == "Session not found"
    assert (await run_client.post(path, json={"language": "python", "code": "x"})).status == 401

    assert (await run_client.post(f"/api/sessions/{session_id}/end", headers=host.headers)).status == 200
    resp = await run_client.post(path, json={"language": "python", "code": "x"}, headers=host.headers)
    assert resp.status == 400 and (await resp.json())["message"] == "Cannot run code in a completed session"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Request body must be a JSON object"),
        ({"code": "x"}, "Language and code are required"),
        ({"language": "python"}, "Language and code are required"),
        ({"language": 3, "code": "x"}, "Language must be a string of at most 40 characters"),
        ({"language": "python", "code": 3}, "Code must be a string"),
        ({"language": "python", "code": "x" * (64 * 1024 + 1)}, "Code must be at most 64 KiB"),
        ({"language": "python", "code": "é" * (32 * 1024 + 1)}, "Code must be at most 64 KiB"),
        ({"language": "python", "code": "x", "stdin": 5}, "Stdin must be a string"),
        ({"language": "python", "code": "x", "stdin": "x" * (16 * 1024 + 1)}, "Stdin must be at most 16 KiB"),
        ({"language": "cobol", "code": "x"}, "Unsupported language: cobol"),
        ({"language": "python", "version": "2.7", "code": "x"}, "Unsupported language: python"),
    ],
)
async def test_bad_run_requests_get_a_clear_400(run_client, factory, body, message):
    session_id, host, _ = await open_session(run_client, factory)
    assert (await run_client.get("/api/runtimes", headers=host.headers)).status == 200  # the list is known now
    resp = await run_client.post(f"/api/sessions/{session_id}/runs", json=body, headers=host.headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["message"] == message


async def test_the_largest_code_and_stdin_are_accepted_even_json_escaped(run_client, factory):
    session_id, host, _ = await open_session(run_client, factory)
    code, stdin = "\x01" * (64 * 1024), "\x02" * (16 * 1024)  # each escaped as \u00XX: 6 bytes a byte
    run = await post_run(run_client, session_id, host, code, stdin=stdin, language="js")
    assert run["language"] == "js" and run["status"] == "queued"


async def test_runtimes_come_from_the_engine_and_are_cached(run_client, factory, fake_piston):
    piston, _ = fake_piston
    user = await factory.user()
    for _ in range(3):
        resp = await run_client.get("/api/runtimes", headers=user.headers)
        assert resp.status == 200
    assert await resp.json() == [
        {"language": "javascript", "version": "18.15.0", "aliases": ["node-javascript", "node-js", "javascript", "js"]},
        {"language": "python", "version": "3.10.0", "aliases": ["py", "py3", "python3", "python3.10"]},
        {"language": "java", "version": "15.0.2", "aliases": []},
    ]
    assert piston.requests["GET /api/v2/runtimes"] == 1
    assert (await run_client.get("/api/runtimes")).status == 401


async def test_runtimes_without_an_engine_answering_is_an_empty_list(piston_settings, factory, redis, mongo):
    client = await client_with(piston_settings, piston_url="http://127.0.0.1:9")
    try:
        user = await factory.user()
        resp = await client.get("/api/runtimes", headers=user.headers)
        assert resp.status == 200 and await resp.json() == []
    finally:
        await client.close()


async def test_one_run_in_flight_per_user(run_client, factory):
    session_id, host, guest = await open_session(run_client, factory)
    await post_run(run_client, session_id, host, "print:1")  # no worker: it stays queued
    resp = await run_client.post(
        f"/api/sessions/{session_id}/runs", json={"language": "python", "code": "x"}, headers=host.headers
    )
    assert resp.status == 429 and resp.headers["Retry-After"].isdigit()
    assert (await resp.json())["message"] == "You already have a run in progress; wait for it to finish"
    await post_run(run_client, session_id, guest, "print:2")  # the other person is not blocked


async def test_two_runs_in_flight_per_session(piston_settings, factory, redis, mongo):
    client = await client_with(piston_settings, runs_in_flight_per_user=5)
    try:
        session_id, host, guest = await open_session(client, factory)
        await post_run(client, session_id, host, "print:1")
        await post_run(client, session_id, guest, "print:2")
        resp = await client.post(
            f"/api/sessions/{session_id}/runs", json={"language": "python", "code": "x"}, headers=host.headers
        )
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["message"] == "This session already has 2 runs in progress; wait for one to finish"
    finally:
        await client.close()


async def test_runs_per_minute_per_user(piston_settings, factory, redis, mongo):
    client = await client_with(
        piston_settings, runs_in_flight_per_user=50, runs_in_flight_per_session=50, runs_per_user_per_minute=3
    )
    try:
        session_id, host, _ = await open_session(client, factory)
        for i in range(3):
            await post_run(client, session_id, host, f"print:{i}")
        resp = await client.post(
            f"/api/sessions/{session_id}/runs", json={"language": "python", "code": "x"}, headers=host.headers
        )
        assert resp.status == 429
        retry_after = int(resp.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert (await resp.json())["message"] == f"Too many runs: at most 3 per minute; try again in {retry_after} s"
        assert await mongo.runs.count_documents({}) == 3, "a refused run is not stored"
    finally:
        await client.close()


async def test_run_queries_use_indexes(run_client, mongo):
    plans = await RunRepo(mongo).explain_queries(ObjectId())
    for name, plan in plans.items():
        assert "COLLSCAN" not in str(plan) and "IXSCAN" in str(plan), (name, plan)
