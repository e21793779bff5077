"""Processes that wait for their dependencies at start-up and outlive their outages."""

from __future__ import annotations

import asyncio
import tempfile

import pytest
from aiohttp.test_utils import TestServer
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from hireflow import embedded
from hireflow.waiting import DependencyTimeout
from hireflow.web.app import create_app
from hireflow.workers.app import create_worker
from tests.conftest import Factory, make_settings, serve
from tests.support.proxy import TcpProxy
from tests.support.workers import eventually
from tests.workers.test_provisioning import create_session, status_is


async def test_a_redis_error_while_starting_a_job_gives_its_slot_back(settings, infra):
    """arq takes a job slot before the Redis calls that start a job; an outage there used to leak it."""
    proxy = await TcpProxy(infra.redis_port).start()
    pool = ConnectionPool.from_url(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=1)
    worker = create_worker(settings, redis_pool=ArqRedis(pool), handle_signals=False, max_jobs=2)
    try:
        proxy.cut()
        for _ in range(5):
            with pytest.raises(RedisConnectionError):
                await worker.start_jobs([b"some-job"])
        assert worker.job_counter == 0
        for _ in range(3):  # every slot can still be taken
            assert worker.sem.locked() is False
            await worker.sem.acquire()
        await worker._poll_iteration()  # an outage in the poll loop is ridden out, not raised
        assert worker.outages == 1
    finally:
        await pool.aclose()
        await proxy.close()


async def test_the_web_process_waits_for_mongodb(infra, db_name, fake_clerk, redis):
    port = embedded.free_port()
    settings = make_settings(infra, db_name, *fake_clerk, startup_timeout_s=60)
    settings = settings.model_copy(update={"db_url": f"mongodb://127.0.0.1:{port}/{db_name}?directConnection=true"})
    starting = asyncio.create_task(serve(create_app(settings)))
    await asyncio.sleep(1.5)
    assert not starting.done(), "start-up should still be waiting for MongoDB"
    process = embedded.start_mongo(port=port, storage_path=":memory:")
    try:
        client = await starting
        try:
            assert (await client.get("/health/ready")).status == 200
        finally:
            await client.close()
    finally:
        embedded.stop(process)


async def test_start_up_gives_up_after_its_timeout_naming_what_it_waited_for(infra, db_name, fake_clerk, redis):
    settings = make_settings(infra, db_name, *fake_clerk, startup_timeout_s=1)
    settings = settings.model_copy(
        update={"db_url": f"mongodb://127.0.0.1:{embedded.free_port()}/x?directConnection=true"}
    )
    server = TestServer(create_app(settings))
    try:
        with pytest.raises(DependencyTimeout, match="MongoDB did not answer within 1s"):
            await server.start_server()
    finally:
        await server.close()


async def test_a_worker_started_before_redis_waits_for_it(
    infra, db_name, fake_clerk, fake_stream, mongo, factory: Factory, worker_process, settings
):
    with tempfile.TemporaryDirectory() as tmp:
        port = embedded.free_port()
        custom = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0", "startup_timeout_s": 60.0})
        worker = worker_process(custom)

        async def waiting() -> bool:
            return "waiting for Redis" in worker.output()

        await eventually(waiting, timeout_s=30)
        await asyncio.sleep(1.0)
        assert worker.process.poll() is None, worker.output()
        redis = embedded.start_redis(port=port, directory=tmp)
        try:
            embedded.wait_for_port(port, redis)
            client = await serve(create_app(custom))
            try:
                session = await create_session(client, await factory.user("host"))
                await eventually(status_is(mongo, session["_id"], "ready"), timeout_s=30)
            finally:
                await client.close()
            assert worker.stop() == 0
        finally:
            embedded.stop(redis)


async def test_a_shorter_429_never_cuts_a_longer_pause(redis):
    from hireflow.workers.throttle import StreamThrottle

    throttle = StreamThrottle(redis)
    for _ in range(20):
        await asyncio.gather(throttle.hold(30.0), *(throttle.hold(0.5) for _ in range(5)))
        assert await throttle.wait_s() > 29
        await redis.delete("hireflow:stream:rate-limited")
