"""Redis through Sentinel: the primary is SIGKILLed under load and a replica promoted; then an audit.

The web app, an in-process worker and a lobby subscriber all reach Redis with a `redis+sentinel://`
URL. Load: hosts create, guests join, hosts end, each through the real app, while the worker
provisions against the Stream fake. The worker runs under a supervisor that restarts it if it dies,
as Kubernetes or compose would. After the promotion: every acknowledged session exists once and none
is left `pending`, the lobby subscriber saw contiguous `seq` or `reset` + snapshot, `/health/ready`
reported the outage and recovered; the figures are printed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.exceptions import RedisError

from hireflow import redis_conn
from hireflow.settings import Settings
from hireflow.web.app import create_app
from hireflow.workers.app import create_worker
from tests.conftest import Factory, User, serve
from tests.support.sentinel import SentinelCluster
from tests.support.workers import eventually, stop_worker
from tests.support.ws import WsClient, WsFactory

log = logging.getLogger(__name__)

LOOPS = 3
STEADY_S = 2.0
AFTER_PROMOTION_S = 3.0
PROMOTION_TIMEOUT_S = 20.0


@dataclass
class Record:
    acked: set[str] = field(default_factory=set)
    attempted: list[str] = field(default_factory=list)
    statuses: list[tuple[float, str, int]] = field(default_factory=list)
    ready: list[tuple[float, int]] = field(default_factory=list)
    redis_writes: list[tuple[float, bool]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    worker_restarts: int = 0

    def count(self, status: int) -> int:
        return sum(1 for _, _, s in self.statuses if s == status)


async def load(app: TestClient, host: User, guest: User, index: int, rec: Record, stop: asyncio.Event) -> None:
    """Create, join, end, over and over; every answer recorded."""
    n = 0
    while not stop.is_set():
        n += 1
        problem = f"failover-{index}-{n}"
        rec.attempted.append(problem)
        resp = await app.post("/api/sessions", json={"problem": problem, "difficulty": "easy"}, headers=host.headers)
        rec.statuses.append((time.monotonic(), "create", resp.status))
        if resp.status != 201:
            await asyncio.sleep(0.1)
            continue
        sid = (await resp.json())["session"]["_id"]
        rec.acked.add(sid)
        for who, action in ((guest, "join"), (host, "end")):
            resp = await app.post(f"/api/sessions/{sid}/{action}", headers=who.headers)
            rec.statuses.append((time.monotonic(), action, resp.status))
        await asyncio.sleep(0.05)


async def probe_ready(app: TestClient, rec: Record, stop: asyncio.Event) -> None:
    while not stop.is_set():
        resp = await app.get("/health/ready")
        rec.ready.append((time.monotonic(), resp.status))
        await asyncio.sleep(0.1)


async def probe_redis_writes(url: str, rec: Record, stop: asyncio.Event) -> None:
    """A write through the Sentinel client every 50 ms: when did Redis stop and start taking writes."""
    conns = redis_conn.clients(url, timeout_s=1.0)
    try:
        while not stop.is_set():
            try:
                await conns.main.incr("failover-probe")
                rec.redis_writes.append((time.monotonic(), True))
            except (RedisError, OSError):
                rec.redis_writes.append((time.monotonic(), False))
            await asyncio.sleep(0.05)
    finally:
        await conns.aclose()


async def read_frames(ws: WsClient, rec: Record) -> None:
    while True:
        rec.frames.append(await ws.recv(timeout_s=60))


async def supervise_worker(settings: Settings, rec: Record) -> None:
    """Run a worker; when it dies (arq stops on a Redis error), start another, as a supervisor would."""
    while True:
        w = create_worker(settings, handle_signals=False)
        task = asyncio.create_task(w.async_run())
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            await stop_worker(w, task)
            raise
        log.warning("worker stopped (%r); restarting it", task.exception())
        rec.worker_restarts += 1
        for _ in range(100):  # closing needs Redis (arq deletes its health key): wait for the promotion
            # arq's close() re-raises the error of any finished job runner: collect and drop them first.
            for key, runner in list(w.tasks.items()):
                if runner.done():
                    del w.tasks[key]
                    if not runner.cancelled():
                        runner.exception()
            try:
                await stop_worker(w, task)
                break
            except (RedisError, OSError):
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)


def check_lobby(frames: list[dict[str, Any]]) -> tuple[int, int]:
    """Every lobby event follows the previous one by exactly one, or comes after a reset + snapshot.
    Returns (events, resets)."""
    expected: int | None = None
    events = resets = 0
    for frame in frames:
        if frame.get("topic") != "lobby":
            continue
        if frame["type"] == "snapshot":
            expected = frame["seq"] + 1
        elif frame["type"] == "reset":
            resets += 1
            expected = None
        elif frame["type"] == "event":
            assert expected is not None, f"an event without a snapshot after a reset: {frame}"
            assert frame["seq"] == expected, f"lobby seq {frame['seq']} where {expected} was due"
            expected += 1
            events += 1
    return events, resets


def longest_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))


@pytest.mark.timeout(150)
async def test_redis_primary_killed_under_load(
    sentinel_cluster: SentinelCluster,
    settings: Settings,
    factory: Factory,
    mongo: Any,
    ws_client: WsFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = sentinel_cluster
    ha = settings.model_copy(update={"redis_url": cluster.url})
    rec, stop = Record(), asyncio.Event()
    app = await serve(create_app(ha))
    hosts = [await factory.user(f"host{i}") for i in range(LOOPS)]
    guests = [await factory.user(f"guest{i}") for i in range(LOOPS)]
    subscriber = await ws_client(app, hosts[0].token)
    rec.frames.append(await subscriber.subscribe("lobby"))
    background = [
        asyncio.create_task(read_frames(subscriber, rec)),
        asyncio.create_task(supervise_worker(ha, rec)),
        asyncio.create_task(probe_ready(app, rec, stop)),
        asyncio.create_task(probe_redis_writes(cluster.url, rec, stop)),
    ]
    pairs = enumerate(zip(hosts, guests, strict=True))
    loops = [asyncio.create_task(load(app, host, guest, i, rec, stop)) for i, (host, guest) in pairs]
    try:
        started = time.monotonic()
        await asyncio.sleep(STEADY_S)
        killed = time.monotonic()
        cluster.kill_primary()

        async def promoted() -> bool:
            return (await cluster.primary_address())[1] == cluster.replica_port

        await eventually(promoted, timeout_s=PROMOTION_TIMEOUT_S, every_s=0.1)
        promoted_at = time.monotonic()
        await asyncio.sleep(AFTER_PROMOTION_S)
        stop.set()
        await asyncio.gather(*loops)
        load_ended = time.monotonic()

        # Audit 1: every acknowledged session exists, once; nothing was stored twice.
        docs = await mongo.sessions.find({}, {"problem": 1, "streamStatus": 1, "streamDirty": 1}).to_list(None)
        stored = {str(d["_id"]) for d in docs}
        assert rec.acked <= stored, f"acknowledged but not stored: {rec.acked - stored}"
        problems = [d["problem"] for d in docs]
        assert len(problems) == len(set(problems)), "a session was stored twice"
        assert not [s for _, _, s in rec.statuses if s >= 500 and s != 503], "a request got a 5xx other than 503"

        # Audit 2: no session is left pending: the worker (or the reconciler) caught up after the promotion.
        async def settled() -> Any:
            docs = await mongo.sessions.find({}, {"streamStatus": 1, "streamDirty": 1}).to_list(None)
            lagging = [d for d in docs if d["streamStatus"] == "pending" or d["streamDirty"]]
            return not lagging or None

        await eventually(settled, timeout_s=45)
        settled_at = time.monotonic()

        # Audit 3: /health/ready saw the outage and recovered.
        async def ready_again() -> bool:
            return (await app.get("/health/ready")).status == 200

        await eventually(ready_again, timeout_s=15)
        assert any(s == 503 for t, s in rec.ready if t >= killed), "/health/ready never reported the outage"

        # Audit 4: the lobby subscriber saw contiguous seq, or reset + snapshot; the new primary's
        # counters may lag the old one's, so a new epoch is due after the promotion.
        await asyncio.sleep(0.5)
        events, resets = check_lobby(rec.frames)
        assert events > 0
        assert resets >= 1, "the lobby continued the old epoch on the promoted replica"

        writes_ok = [t for t, ok in rec.redis_writes if ok]
        first_write_after = min((t for t in writes_ok if t > killed), default=float("nan"))
        api_writes = [t for t, action, s in rec.statuses if action in ("create", "join", "end") and s < 300]
        with capsys.disabled():
            print(
                "\nRedis Sentinel failover under load:"
                f"\n  primary SIGKILLed {killed - started:.1f} s into the run; replica promoted after "
                f"{promoted_at - killed:.1f} s (down-after 1 s)"
                f"\n  seconds without Redis writes (probe every 50 ms): {first_write_after - killed:.2f}"
                f"\n  longest gap between acknowledged API writes: {longest_gap(api_writes, started, load_ended):.2f} s"
                f"\n  requests: {len(rec.statuses)} writes, {rec.count(503)} got 503 "
                f"(creates {len(rec.attempted)}, acknowledged {len(rec.acked)})"
                f"\n  /health/ready 503s: {sum(1 for t, s in rec.ready if s == 503 and t >= killed)} of "
                f"{sum(1 for t, _ in rec.ready if t >= killed)} probes after the kill"
                f"\n  lobby subscriber: {events} events, {resets} reset(s) + snapshot, no hole"
                f"\n  worker restarts by the supervisor: {rec.worker_restarts}"
                f"\n  every session provisioned/torn down {settled_at - load_ended:.1f} s after the load stopped"
            )
    finally:
        stop.set()
        for task in loops + background:
            task.cancel()
        await asyncio.gather(*loops, *background, return_exceptions=True)
        await app.close()
