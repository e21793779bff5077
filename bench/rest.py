"""REST benchmark: `python bench/rest.py` (or `make bench`).

Starts SecantusDB and a private Redis, runs `run_web.py` as its own process, loads 20 active and
1,000 completed sessions, then drives authenticated `GET /api/sessions/active`,
`GET /api/sessions/{id}` and `POST /api/sessions` at 50 concurrent connections and prints
requests/s with p50/p99 latency. The load comes from `wrk` when it is installed (a C load generator
that leaves the CPU to the server), else from an aiohttp client in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from bson import ObjectId
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack

CONNECTIONS = 50


async def seed(db_url: str, db_name: str, clerk_id: str) -> str:
    client: AsyncMongoClient[dict] = AsyncMongoClient(db_url)
    db = client[db_name]
    users = [
        {
            "_id": ObjectId(),
            "clerkId": f"user_bench_{i}",
            "name": f"User {i}",
            "email": f"u{i}@bench.test",
            "profileImage": "",
        }
        for i in range(50)
    ]
    users[0]["clerkId"] = clerk_id
    await db.users.insert_many(users)
    start = datetime.now(UTC) - timedelta(days=30)
    sessions = []
    for i in range(1020):
        active = i >= 1000
        created = start + timedelta(minutes=i)
        sessions.append(
            {
                "_id": ObjectId(),
                "problem": f"Problem {i}",
                "difficulty": "medium",
                "host": users[i % 50]["_id"],
                "participant": None if active else users[(i + 1) % 50]["_id"],
                "status": "active" if active else "completed",
                "callId": f"session_bench_{i}",
                "streamStatus": "ready",
                "createdAt": created,
                "updatedAt": created,
                "endedAt": None if active else created,
            }
        )
    await db.sessions.insert_many(sessions)
    one = str(sessions[-1]["_id"])
    await client.close()
    return one


WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
{body}
"""


def run_wrk(url: str, token: str, method: str, seconds: int, body: str | None) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(method=method, token=token, body=f"wrk.body = '{body}'" if body else ""))
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": float(non2xx.group(1)) if non2xx else 0.0}


async def run_python(url: str, token: str, method: str, seconds: int, body: str | None) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as http:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with http.request(method, url, headers=headers, data=body) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50": q[49], "p99": q[98], "errors": float(errors)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args()

    clerk_id = "user_bench_caller"
    with tempfile.TemporaryDirectory(prefix="hireflow-bench-") as tmp, Stack(tmp, db_on_disk=True) as stack:
        web_port, _web = stack.web()
        one = await seed(stack.db_url, "bench", clerk_id)
        token = stack.key.mint(clerk_id, ttl_s=3600)
        base = f"http://127.0.0.1:{web_port}"
        async with aiohttp.ClientSession() as http, http.get(base + "/health/ready") as ready:
            assert ready.status == 200, await ready.text()

        runs = [
            ("GET /api/sessions/active", "GET", "/api/sessions/active", None, (1000, 100)),
            ("GET /api/sessions/{id}", "GET", f"/api/sessions/{one}", None, (500, None)),
            ("POST /api/sessions", "POST", "/api/sessions", '{"problem":"Bench","difficulty":"easy"}', (200, None)),
        ]
        print(f"client: {args.client}, {CONNECTIONS} connections, {args.seconds}s per route, {os.cpu_count()} cores")
        print(f"{'route':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}   target")
        for label, method, path, body, (min_rps, max_p99) in runs:
            if args.client == "wrk":
                r = run_wrk(base + path, token, method, args.seconds, body)
            else:
                r = await run_python(base + path, token, method, args.seconds, body)
            target = f">= {min_rps} req/s" + (f", p99 < {max_p99} ms" if max_p99 else "")
            ok = r["rps"] >= min_rps and (max_p99 is None or r["p99"] < max_p99) and r["errors"] == 0
            print(
                f"{label:<28}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>9.0f}   "
                f"{target} {'ok' if ok else 'MISSED'}"
            )


if __name__ == "__main__":
    asyncio.run(main())
