"""Provisioning benchmark: `python bench/provisioning.py`.

Creates 200 sessions through the API at 20 per second against the local Stream fake, first with one
worker process and then with two, and prints jobs/s and p50/p99 latency from the `POST` to
`streamStatus: "ready"` (seen by polling MongoDB every 20 ms), plus the most concurrent Stream
requests ever seen for one session (1 means no session was ever provisioned twice at the same time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from bson import ObjectId
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack
from tests.fakes.stream import FakeStream


async def run(workers: int, sessions: int, rate: float, tmp: str) -> dict[str, float]:
    stream = FakeStream()
    fake = TestServer(stream.app())
    await fake.start_server()
    fake_url = str(fake.make_url("")).rstrip("/")
    stack = Stack(
        tmp,
        STREAM_API_KEY=stream.api_key,
        STREAM_API_SECRET=stream.api_secret,
        STREAM_CHAT_URL=fake_url,
        STREAM_BASE_URL=fake_url,
    )
    try:
        with stack:
            web_port, _web = stack.web()
            for _ in range(workers):
                stack.worker()
            db_url, key = stack.db_url, stack.key
            client: AsyncMongoClient[dict] = AsyncMongoClient(db_url)
            db = client.bench
            await db.users.insert_one(
                {"clerkId": "user_bench", "name": "Bench", "email": "b@bench.test", "profileImage": ""}
            )
            headers = {"Authorization": f"Bearer {key.mint('user_bench', ttl_s=3600)}"}
            posted: dict[ObjectId, float] = {}
            ready: dict[ObjectId, float] = {}
            base = f"http://127.0.0.1:{web_port}"

            async with aiohttp.ClientSession() as http:
                # Warm-up, not measured: every worker process has imported its SDKs and opened its
                # connections once the first few sessions are ready.
                for i in range(5 * workers):
                    async with http.post(
                        base + "/api/sessions", json={"problem": f"W{i}", "difficulty": "easy"}, headers=headers
                    ) as resp:
                        assert resp.status == 201
                while await db.sessions.count_documents({"streamStatus": "ready"}) < 5 * workers:
                    await asyncio.sleep(0.05)
                warm = await db.sessions.count_documents({})

                async def create(i: int) -> None:
                    t0 = time.perf_counter()
                    async with http.post(
                        base + "/api/sessions", json={"problem": f"P{i}", "difficulty": "easy"}, headers=headers
                    ) as resp:
                        body = await resp.json()
                        assert resp.status == 201, body
                    posted[ObjectId(body["session"]["_id"])] = t0

                async def watch() -> None:
                    while len(ready) < sessions:
                        now = time.perf_counter()
                        waiting = [s for s in posted if s not in ready]
                        query = {"_id": {"$in": waiting}, "streamStatus": "ready"}
                        async for doc in db.sessions.find(query, {"_id": 1}):
                            ready[doc["_id"]] = now
                        await asyncio.sleep(0.02)

                watcher = asyncio.create_task(watch())
                started = time.perf_counter()
                tasks = []
                for i in range(sessions):
                    tasks.append(asyncio.create_task(create(i)))
                    await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
                await asyncio.gather(*tasks)
                await asyncio.wait_for(watcher, timeout=120)
                elapsed = max(ready.values()) - started
            await client.close()
            latencies = sorted((ready[s] - posted[s]) * 1000 for s in posted)
            q = statistics.quantiles(latencies, n=100)
            return {
                "jobs_per_s": sessions / elapsed,
                "p50": q[49],
                "p99": q[98],
                "max": latencies[-1],
                "max_concurrent": float(
                    max(stream.max_in_flight[c] for c in stream.max_in_flight if c.startswith("session_"))
                ),
                "calls": float(sum(n for c, n in stream.created.items() if c.startswith("default:")) - warm),
            }
    finally:
        await fake.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="sessions created per second")
    args = parser.parse_args()
    print(f"{args.sessions} sessions at {args.rate:.0f}/s, {os.cpu_count()} cores, Stream fake in-process")
    print(
        f"{'workers':<9}{'jobs/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls':>7}{'max concurrent/session':>24}"
    )
    with tempfile.TemporaryDirectory(prefix="hireflow-bench-") as tmp:
        for workers in (1, 2):
            r = await run(workers, args.sessions, args.rate, tmp)
            print(
                f"{workers:<9}{r['jobs_per_s']:>8.1f}{r['p50']:>9.0f}{r['p99']:>9.0f}{r['max']:>9.0f}"
                f"{r['calls']:>7.0f}{r['max_concurrent']:>24.0f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
