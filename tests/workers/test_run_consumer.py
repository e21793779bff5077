"""The code-run queue: a duplicate hand-over runs once, and a worker rides out an unreachable Redis."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from hireflow import keys
from hireflow.web.app import create_app
from hireflow.workers.run_consumer import RunConsumer
from tests.conftest import Factory, serve
from tests.support.runs import finished, open_session, post_run
from tests.support.workers import eventually


async def test_a_run_handed_over_twice_is_executed_once(
    piston_settings, factory: Factory, worker, fake_piston, redis, mongo
):
    client = await serve(create_app(piston_settings))
    try:
        session_id, host, _ = await open_session(client, factory)
        run = await post_run(client, session_id, host, "print:once")
        await redis.rpush(keys.RUNS_QUEUE, orjson.dumps({"run_id": run["_id"]}))  # e.g. the reconciler's
        await worker(piston_settings)
        await finished(mongo, run["_id"])
        await eventually(lambda: _empty(redis))
        await asyncio.sleep(0.3)
        assert len(fake_piston[0].executed) == 1
    finally:
        await client.close()


async def _empty(redis: Any) -> bool:
    return await redis.llen(keys.RUNS_QUEUE) == 0


async def test_an_unreachable_redis_is_waited_out_not_fatal(caplog, redis, infra):
    seen: list[str] = []

    async def execute(_ctx: dict[str, Any], *, run_id: str, request_id: str | None) -> None:
        seen.append(run_id)

    caplog.set_level(logging.WARNING, "hireflow.workers.run_consumer")
    down = RunConsumer("redis://127.0.0.1:9/0", execute, {}, concurrency=2)
    down.start()
    await asyncio.sleep(0.3)
    await down.stop()
    assert "run queue unreachable" in caplog.text and seen == []

    up = RunConsumer(infra.redis_url, execute, {}, concurrency=2)
    up.start()
    await redis.rpush(keys.RUNS_QUEUE, orjson.dumps({"run_id": "abc"}))
    await eventually(lambda: _seen(seen))
    await up.stop()
    assert seen == ["abc"]


async def _seen(seen: list[str]) -> bool:
    return bool(seen)
