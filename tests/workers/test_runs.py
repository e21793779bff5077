"""Executing runs in workers against the Piston fake: every outcome, engine faults, output caps, and
runs left behind by a dead worker (retried once by the reconciler, then failed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from bson import ObjectId

from hireflow.settings import Settings
from hireflow.timeutil import utcnow
from hireflow.web.app import create_app
from tests.conftest import Factory, serve
from tests.support.runs import finished, open_session, post_run
from tests.support.workers import eventually


@pytest.fixture
async def run_client(piston_settings: Settings, redis: Any, mongo: Any) -> AsyncIterator[TestClient]:
    client = await serve(create_app(piston_settings))
    yield client
    await client.close()


@pytest.fixture
async def session(run_client, factory: Factory, worker, piston_settings):
    await worker(piston_settings)
    return await open_session(run_client, factory)


@pytest.mark.parametrize(
    ("code", "language", "status", "expected"),
    [
        ("print:ok\neprint:warn", "python", "succeeded", {"stdout": "ok\n", "stderr": "warn\n", "exitCode": 0}),
        ("eprint:Traceback\nexit:1", "python", "failed", {"stderr": "Traceback\n", "exitCode": 1, "error": None}),
        (
            "kill:SIGSEGV",
            "python",
            "failed",
            {"signal": "SIGSEGV", "exitCode": None, "error": "The program was killed (SIGSEGV)"},
        ),
        (
            "print:start\nsleep:60000",
            "python",
            "timed_out",
            {"signal": "SIGKILL", "error": "The program ran out of time"},
        ),
        ("compile-error", "java", "failed", {"exitCode": 1, "error": "Compilation failed", "version": "15.0.2"}),
        ("print:compiled", "java", "succeeded", {"stdout": "compiled\n"}),
    ],
)
async def test_outcomes(run_client, session, mongo, fake_piston, code, language, status, expected):
    session_id, host, _ = session
    run = await post_run(run_client, session_id, host, code, language=language)
    doc = await finished(mongo, run["_id"])
    assert doc["status"] == status, doc
    for key, value in expected.items():
        assert doc[key] == value, (key, doc)
    sent = fake_piston[0].executed[-1]
    assert sent["files"] == [{"content": code}] and sent["run_timeout"] == 1000 and sent["compile_timeout"] == 10_000
    assert sent["run_memory_limit"] == -1 and sent["stdin"] == ""


async def test_huge_output_is_capped_at_64_kib_and_flagged(run_client, session, mongo):
    session_id, host, _ = session
    run = await post_run(run_client, session_id, host, "spam:1000000\neprint:tail")
    doc = await finished(mongo, run["_id"])
    assert doc["status"] == "succeeded" and doc["truncated"] is True
    assert doc["stdout"] == "x" * 64 * 1024 and doc["stderr"] == "tail\n"


async def test_the_engines_own_output_limit_is_reported(run_client, session, mongo, fake_piston):
    fake_piston[0].output_max_size = 1024
    session_id, host, _ = session
    doc = await finished(mongo, (await post_run(run_client, session_id, host, "spam:5000"))["_id"])
    assert doc["status"] == "failed" and doc["truncated"] is True and len(doc["stdout"]) == 1024
    assert doc["error"] == "The program wrote more output than the engine allows"


async def test_a_request_the_engine_refuses_is_rejected_with_its_message(run_client, session, mongo):
    session_id, host, _ = session
    run = await post_run(run_client, session_id, host, "print:x", version="9.9.9")
    doc = await finished(mongo, run["_id"])
    assert doc["status"] == "rejected" and doc["error"] == "python-9.9.9 runtime is unknown"


async def test_an_engine_that_is_down_fails_the_run_with_a_reason(piston_settings, factory, worker, redis, mongo):
    down = piston_settings.model_copy(update={"piston_url": "http://127.0.0.1:9"})
    client = await serve(create_app(down))
    try:
        await worker(down)
        session_id, host, _ = await open_session(client, factory)
        run = await post_run(client, session_id, host, "print:x")  # 202: the request never waits for the engine
        doc = await finished(mongo, run["_id"])
        assert doc["status"] == "failed" and doc["error"] == "The code execution engine could not be reached"
        await post_run(client, session_id, host, "print:again")  # the failed run released its place
    finally:
        await client.close()


async def test_a_slow_engine_fails_the_run_when_its_timeout_passes(run_client, session, mongo, fake_piston):
    fake_piston[0].fail("POST", "^/api/v2/execute$", status=0, delay_s=5.0)  # the client gives up after 3 s
    session_id, host, _ = session
    doc = await finished(mongo, (await post_run(run_client, session_id, host, "print:x"))["_id"])
    assert doc["status"] == "failed" and doc["error"] == "The code execution engine did not answer in time"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"", "The code execution engine failed (500)"),
        (200, b"<html>proxy</html>", "The code execution engine failed (200)"),
        (200, b'{"language": "python"}', "The code execution engine sent an unexpected answer"),
    ],
)
async def test_engine_failures_fail_the_run(run_client, session, mongo, fake_piston, status, body, error):
    fake_piston[0].fail("POST", "^/api/v2/execute$", status=status, body=body)
    session_id, host, _ = session
    doc = await finished(mongo, (await post_run(run_client, session_id, host, "print:x"))["_id"])
    assert doc["status"] == "failed" and doc["error"] == error


async def test_a_finished_run_frees_the_users_place(run_client, session, mongo):
    session_id, host, _ = session
    for i in range(3):
        doc = await finished(mongo, (await post_run(run_client, session_id, host, f"print:{i}"))["_id"])
        assert doc["stdout"] == f"{i}\n"


async def insert_stale(mongo, session_id: str, user, *, status: str, retries: int) -> ObjectId:
    long_ago = utcnow() - timedelta(hours=1)
    run_id = ObjectId()
    await mongo.runs.insert_one(
        {
            "_id": run_id,
            "session": ObjectId(session_id),
            "by": user.doc["_id"],
            "byName": "Host",
            "language": "python",
            "version": "3.10.0",
            "code": "print:again",
            "stdin": "",
            "status": status,
            "stdout": "",
            "stderr": "",
            "truncated": False,
            "exitCode": None,
            "signal": None,
            "durationMs": None,
            "error": None,
            "retries": retries,
            "createdAt": long_ago,
            "updatedAt": long_ago,
            "startedAt": long_ago if status == "running" else None,
            "finishedAt": None,
        }
    )
    return run_id


@pytest.mark.parametrize("status", ["running", "queued"])
async def test_the_reconciler_retries_a_run_left_behind_once(run_client, session, mongo, status):
    session_id, host, _ = session
    run_id = await insert_stale(mongo, session_id, host, status=status, retries=0)
    doc = await finished(mongo, str(run_id))
    assert doc["status"] == "succeeded" and doc["stdout"] == "again\n" and doc["retries"] == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("running", "The worker running this code stopped before it finished"),
        ("queued", "No worker picked this run up in time"),
    ],
)
async def test_the_reconciler_fails_a_run_left_behind_twice(run_client, session, mongo, fake_piston, status, error):
    session_id, host, _ = session
    run_id = await insert_stale(mongo, session_id, host, status=status, retries=1)
    doc = await finished(mongo, str(run_id))
    assert doc["status"] == "failed" and doc["error"] == error
    assert fake_piston[0].executed == []


@pytest.mark.timeout(90)
async def test_a_worker_killed_mid_run_is_replaced_and_the_run_retried(
    piston_settings, factory, fake_piston, worker_process, worker, redis, mongo
):
    piston, _ = fake_piston
    piston.delay_s = 30.0
    fast = piston_settings.model_copy(update={"piston_timeout_s": 1.5, "runs_stale_after_s": 1.0})
    client = await serve(create_app(fast))
    try:
        proc = worker_process(fast)
        session_id, host, _ = await open_session(client, factory)
        run = await post_run(client, session_id, host, "print:survived")
        await asyncio.wait_for(piston.started.wait(), 30)
        proc.kill()
        piston.delay_s = 0.0
        doc = await mongo.runs.find_one({"_id": ObjectId(run["_id"])})
        assert doc["status"] == "running"
        await worker(fast)
        doc = await finished(mongo, run["_id"], timeout_s=40)
        assert doc["status"] == "succeeded" and doc["retries"] == 1 and doc["stdout"] == "survived\n"
        assert len(piston.executed) == 2

        async def place_freed() -> bool:
            resp = await client.post(
                f"/api/sessions/{session_id}/runs", json={"language": "python", "code": "x"}, headers=host.headers
            )
            return resp.status == 202

        await eventually(place_freed, timeout_s=5)
    finally:
        await client.close()


async def test_a_run_still_queued_when_its_session_ends_is_not_executed(
    run_client, factory, worker, piston_settings, mongo, fake_piston
):
    session_id, host, guest = await open_session(run_client, factory)  # no worker yet: the run stays queued
    run = await post_run(run_client, session_id, guest, "print:late")
    assert (await run_client.post(f"/api/sessions/{session_id}/end", headers=host.headers)).status == 200
    await worker(piston_settings)
    doc = await finished(mongo, run["_id"])
    assert doc["status"] == "failed" and doc["error"] == "The session ended before this run started"
    assert doc["startedAt"] is None
    assert not any(sent["files"] == [{"content": "print:late"}] for sent in fake_piston[0].executed)
    listed = await run_client.get(f"/api/sessions/{session_id}/runs", headers=guest.headers)
    assert (await listed.json())["runs"][0]["status"] == "failed"
