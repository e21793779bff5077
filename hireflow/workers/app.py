"""The one worker factory: `create_worker(settings)` → an arq `Worker` with every job and the reconciler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from hireflow import keys, redis_conn
from hireflow.cache import CacheVersions
from hireflow.events import FanOut, LoggingSink
from hireflow.observability import Metrics, serve_metrics
from hireflow.piston.client import piston_client
from hireflow.queue import DELETE_STREAM_USER, EXECUTE_RUN, SYNC_SESSION, UPSERT_STREAM_USER, JobQueue
from hireflow.realtime.bus import Bus
from hireflow.realtime.publisher import RealtimeSink
from hireflow.services.run_limits import RunLimits, quota
from hireflow.services.runs import RunService
from hireflow.services.sessions import SessionService
from hireflow.settings import Settings
from hireflow.store import mongo
from hireflow.store.runs import RunRepo
from hireflow.store.sessions import SessionRepo
from hireflow.store.users import UserRepo
from hireflow.stream.gateway import StreamGateway
from hireflow.waiting import wait_for
from hireflow.workers.deps import WorkerDeps, deps
from hireflow.workers.instrument import instrumented
from hireflow.workers.jobs.runs import execute_run
from hireflow.workers.jobs.sessions import sync_session
from hireflow.workers.jobs.users import delete_stream_user, upsert_stream_user
from hireflow.workers.locks import SessionLocks
from hireflow.workers.reconcile import reconcile
from hireflow.workers.resilient import ResilientWorker
from hireflow.workers.run_consumer import RunConsumer
from hireflow.workers.throttle import StreamThrottle

log = logging.getLogger(__name__)

# A lock outlives any job that may hold it (arq cancels a job at its timeout).
LOCK_MARGIN_S = 5.0


async def _serve_metrics(metrics: Metrics, settings: Settings) -> Any:
    if not settings.metrics_enabled or settings.worker_metrics_port is None:
        return None
    try:
        return await serve_metrics(metrics, settings.listen_host, settings.worker_metrics_port)
    except OSError as exc:  # another worker on this host has the port
        log.warning("worker metrics not served on port %s: %s", settings.worker_metrics_port, exc)
        return None


def redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set")
    return redis_conn.arq_settings(settings.redis_url)


def create_worker(settings: Settings, **overrides: Any) -> ResilientWorker:
    metrics = Metrics()

    async def on_startup(ctx: dict[str, Any]) -> None:
        if not settings.db_url:
            raise RuntimeError("DB_URL is not set")
        client, db = mongo.connect(settings.db_url, timeout_ms=settings.mongo_timeout_ms)
        await wait_for("MongoDB", lambda: mongo.ensure_indexes(db), timeout_s=settings.startup_timeout_s)
        redis = ctx["redis"]
        redis_conn.harden(redis)  # arq builds a plain redis-py Sentinel manager
        versions = CacheVersions(redis, metrics)
        realtime = RealtimeSink(Bus(redis, settings), versions, metrics)
        ctx["repairing"] = asyncio.create_task(realtime.repair_forever(settings.rt_repair_interval_s))
        sessions, users = SessionRepo(db), UserRepo(db)
        events = FanOut([LoggingSink(), realtime])
        service = SessionService(
            sessions,
            users,
            versions,
            events,
            cache_max_age_s=settings.cache_max_age_s,
            stream_enabled=settings.stream_configured,
        )
        queue, run_repo = JobQueue(redis, metrics), RunRepo(db)
        runs = RunService(run_repo, service, RunLimits(redis, quota(settings)), realtime, queue, None)
        ctx["deps"] = WorkerDeps(
            settings=settings,
            mongo=client,
            sessions=sessions,
            service=service,
            users=users,
            stream=StreamGateway.from_settings(settings),
            locks=SessionLocks(redis, ttl_s=settings.job_timeout_s + LOCK_MARGIN_S),
            throttle=StreamThrottle(redis),
            queue=queue,
            piston=piston_client(settings),
            runs=runs,
            run_repo=run_repo,
        )
        ctx["metrics_runner"] = await _serve_metrics(metrics, settings)
        consumer = ctx["runs_consumer"] = RunConsumer(
            settings.redis_url or "",
            instrumented(execute_run, EXECUTE_RUN, metrics),
            ctx,
            concurrency=settings.worker_max_jobs,
        )
        consumer.start()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        consumer: RunConsumer | None = ctx.get("runs_consumer")
        if consumer is not None:
            await consumer.stop()
        if "deps" in ctx:
            await deps(ctx).service.aclose()
        repairing: asyncio.Task[None] | None = ctx.get("repairing")
        if repairing is not None:
            repairing.cancel()
            await asyncio.gather(repairing, return_exceptions=True)
        runner = ctx.get("metrics_runner")
        if runner is not None:
            await runner.cleanup()
        if "redis" in ctx:
            await redis_conn.close_sentinels(ctx["redis"])  # arq closes only the data connections
        d: WorkerDeps | None = ctx.get("deps")
        if d is None:
            return
        if d.stream is not None:
            await d.stream.aclose()
        if d.piston is not None:
            await d.piston.aclose()
        await d.mongo.close()

    def job(coroutine: Any, name: str) -> Any:
        return func(
            instrumented(coroutine, name, metrics),  # type: ignore[arg-type]
            name=name,
            keep_result=0,
            timeout=settings.job_timeout_s,
            max_tries=settings.job_max_tries,
        )

    options: dict[str, Any] = {
        "functions": [
            job(sync_session, SYNC_SESSION),
            job(upsert_stream_user, UPSERT_STREAM_USER),
            job(delete_stream_user, DELETE_STREAM_USER),
        ],
        "cron_jobs": [
            cron(
                reconcile,
                name="reconcile",
                second=set(range(0, 60, settings.reconcile_interval_s)),
                run_at_startup=True,
                timeout=settings.job_timeout_s,
                keep_result=0,
            )
        ],
        "queue_name": keys.QUEUE,
        "redis_settings": redis_settings(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "poll_delay": settings.worker_poll_delay_s,
        "job_timeout": settings.job_timeout_s,
        "keep_result": 0,
        "max_tries": settings.job_max_tries,
        "max_jobs": settings.worker_max_jobs,
    }
    options.update(overrides)
    return ResilientWorker(startup_timeout_s=settings.startup_timeout_s, **options)
