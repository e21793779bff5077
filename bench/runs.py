"""Code-run benchmark: `python bench/runs.py`.

200 runs from 50 users (25 sessions, host and participant each running 4 in a row, as the one-in-
flight limit allows) against the in-process Piston fake taking 200 ms per execution. Prints runs/s
and the latency from sending the `POST /api/sessions/{id}/runs` to receiving that run's
`run.finished` frame on the user's WebSocket, for one and two worker processes (slots: runs one
worker executes at once, WORKER_MAX_JOBS), and the median time a run spent in each step: the `202`,
`queued` (stored to claimed by a worker), `running` (claimed to finished). The reference line
is the engine alone: the same 200 executions sent straight to the fake by 50 clients (the floor the
backend adds its queueing, storage and events to). Target: p99 ≤ execution time + 100 ms.

"burst" lines: every user runs back to back, far faster than the limits let a user go for long (10 a
minute); "paced": each user starts one run every `--period-s` (6 s: exactly that limit), the most a
population of 50 users can sustain. Each line also gives the CPU time per run of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack
from tests.fakes.piston import FakePiston

ORIGIN = "http://localhost:5173"
CODE = "print:hello"


def summary(latencies_ms: list[float], elapsed_s: float) -> dict[str, float]:
    latencies_ms = sorted(latencies_ms)
    q = statistics.quantiles(latencies_ms, n=100)
    return {"runs_per_s": len(latencies_ms) / elapsed_s, "p50": q[49], "p99": q[98], "max": latencies_ms[-1]}


async def reference(url: str, users: int, per_user: int) -> dict[str, float]:
    """The engine alone: each of `users` clients sends `per_user` executions in a row."""
    body = {"language": "python", "version": "*", "files": [{"content": CODE}], "stdin": ""}
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def user() -> None:
            for _ in range(per_user):
                t0 = time.perf_counter()
                async with http.post(url + "/api/v2/execute", json=body) as resp:
                    assert resp.status == 200
                    await resp.read()
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(users)))
        return summary(latencies, time.perf_counter() - started)


async def through_backend(
    piston_url: str, workers: int, max_jobs: int, users: int, per_user: int, tmp: str, period_s: float = 0.0
) -> dict[str, float]:
    """`period_s` 0: every user runs back to back (a burst); else each user starts a run every
    `period_s`, at a random phase (10 a minute per user is the most the limits let through)."""
    stack = Stack(
        tmp,
        PISTON_URL=piston_url,
        WORKER_METRICS_PORT="0",
        METRICS_ENABLED="false",
        WORKER_MAX_JOBS=str(max_jobs),
    )
    with stack:
        port, _web = stack.web(log=Path(tmp) / f"web-{workers}.log")
        for _ in range(workers):
            stack.worker()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.db_url)
        db = mongo.bench
        clerk_ids = [f"user_bench_{i}" for i in range(users)]
        await db.users.insert_many(
            [{"clerkId": c, "name": c, "email": f"{c}@bench.test", "profileImage": ""} for c in clerk_ids]
        )
        headers = [{"Authorization": f"Bearer {stack.key.mint(c, ttl_s=3600)}"} for c in clerk_ids]
        base = f"http://127.0.0.1:{port}"
        latencies: list[float] = []
        accepted: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sessions = []
            for i in range(0, users, 2):
                async with http.post(
                    base + "/api/sessions", json={"problem": f"P{i}", "difficulty": "easy"}, headers=headers[i]
                ) as resp:
                    sid = (await resp.json())["session"]["_id"]
                async with http.post(f"{base}/api/sessions/{sid}/join", headers=headers[i + 1]) as resp:
                    assert resp.status == 200, await resp.text()
                sessions += [sid, sid]
            sockets = []
            for i in range(users):
                ws = await http.ws_connect(base + "/api/ws", headers=headers[i], origin=ORIGIN)
                assert orjson.loads((await ws.receive()).data)["type"] == "ready"
                await ws.send_str(orjson.dumps({"type": "subscribe", "topic": f"session:{sessions[i]}"}).decode())
                while orjson.loads((await ws.receive()).data)["type"] != "snapshot":
                    pass
                sockets.append(ws)

            async def finished(ws: aiohttp.ClientWebSocketResponse, run_id: str) -> dict[str, Any]:
                while True:
                    frame = orjson.loads((await ws.receive(timeout=60)).data)
                    if frame.get("event") == "run.finished" and frame["run"]["_id"] == run_id:
                        return frame["run"]  # type: ignore[no-any-return]

            async def user(i: int, count: int, record: bool) -> None:
                phase = random.uniform(0, period_s)
                begin = time.perf_counter()
                for k in range(count):
                    if period_s:
                        await asyncio.sleep(max(0.0, begin + phase + k * period_s - time.perf_counter()))
                    t0 = time.perf_counter()
                    async with http.post(
                        f"{base}/api/sessions/{sessions[i]}/runs",
                        json={"language": "python", "code": CODE},
                        headers=headers[i],
                    ) as resp:
                        body = await resp.json()
                        assert resp.status == 202, body
                    if record:
                        accepted.append((time.perf_counter() - t0) * 1000)
                    run = await finished(sockets[i], body["run"]["_id"])
                    assert run["status"] == "succeeded", run
                    if record:
                        latencies.append((time.perf_counter() - t0) * 1000)

            # Warm-up, not measured: every worker has connected and run a few jobs.
            await asyncio.gather(*(user(i, 1, False) for i in range(0, users, 5)))
            await asyncio.sleep(1.0)
            cpu_before, own_before = stack.cpu_seconds(), time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(user(i, per_user, True) for i in range(users)))
            elapsed = time.perf_counter() - started
            cpu_after, own_after = stack.cpu_seconds(), time.process_time()
            for ws in sockets:
                await ws.close()
        docs = await db.runs.find({}, {"createdAt": 1, "startedAt": 1, "finishedAt": 1}).to_list(None)
        await mongo.close()
        result = summary(latencies, elapsed)
        result["post_p50"] = statistics.median(accepted)
        result["queued_p50"] = statistics.median((d["startedAt"] - d["createdAt"]).total_seconds() * 1000 for d in docs)
        result["running_p50"] = statistics.median(
            (d["finishedAt"] - d["startedAt"]).total_seconds() * 1000 for d in docs
        )
        runs = len(latencies)
        for role in ("web", "worker", "db", "redis"):
            result[f"cpu_{role}"] = (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) * 1000 / runs
        result["cpu_bench"] = (own_after - own_before) * 1000 / runs
        return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--exec-ms", type=float, default=200.0, help="execution time of the Piston fake")
    parser.add_argument("--paced-only", action="store_true", help="only the paced line")
    parser.add_argument(
        "--period-s", type=float, default=6.0, help="paced lines: one run per user every this long (6 s: 10/min)"
    )
    args = parser.parse_args()
    if args.users % 2 or args.runs // args.users > 9:
        parser.error("users must be even (host and participant) and runs/users at most 9 (10 a minute per user)")
    per_user = args.runs // args.users
    piston = FakePiston(delay_s=args.exec_ms / 1000)
    fake = TestServer(piston.app())
    await fake.start_server()
    url = str(fake.make_url("")).rstrip("/")
    print(f"{per_user * args.users} runs from {args.users} users, {args.exec_ms:.0f} ms each, {os.cpu_count()} cores")
    print("CPU ms per run: web, worker(s), db (SecantusDB), redis, and this process (clients + engine fake)")
    print(
        f"{'':<34}{'runs/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'202 p50':>8}{'queued':>7}{'running':>8}  {'cpu: web':>8}{'worker':>7}{'db':>6}{'redis':>6}{'bench':>6}"
    )

    def line(name: str, r: dict[str, float]) -> None:
        stages, cpu = "", ""
        if "post_p50" in r:
            stages = f"{r['post_p50']:>8.0f}{r['queued_p50']:>7.0f}{r['running_p50']:>8.0f}"
            cpu = f"  {r['cpu_web']:>8.1f}{r['cpu_worker']:>7.1f}{r['cpu_db']:>6.1f}{r['cpu_redis']:>6.1f}"
            cpu += f"{r['cpu_bench']:>6.1f}"
        print(f"{name:<34}{r['runs_per_s']:>7.1f}{r['p50']:>8.0f}{r['p99']:>8.0f}{r['max']:>8.0f}{stages}{cpu}")

    try:
        line("engine alone (ref.)", await reference(url, args.users, per_user))
        with tempfile.TemporaryDirectory(prefix="hireflow-bench-") as tmp:
            for workers, slots in () if args.paced_only else ((1, 20), (1, args.users), (2, args.users)):
                r = await through_backend(url, workers, slots, args.users, per_user, tmp)
                line(f"burst, {workers} worker(s) x {slots} slots", r)
            r = await through_backend(url, 1, 20, args.users, per_user, tmp, period_s=args.period_s)
            line(f"paced {args.period_s:g} s, 1 worker x 20 slots", r)
        print(f"max concurrent executions at the engine: {piston.max_in_flight}")
    finally:
        await fake.close()


if __name__ == "__main__":
    asyncio.run(main())
