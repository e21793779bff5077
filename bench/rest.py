"""REST benchmark: `python bench/rest.py` (or `make bench`).

Starts SecantusDB and a private Redis, runs `run_web.py` in production mode (JSON access log and
metrics on, `WEB_CONCURRENCY` processes), loads 20 active and 1,000 completed sessions, then drives
authenticated reads and `POST /api/sessions` at 50 concurrent connections and prints requests/s with
p50/p99 latency. Absolute figures move 3x from day to day on a shared machine, so the same run first
measures raw aiohttp (bench/raw_aiohttp.py: the same process count and event loop, answering with the
`/api/sessions/active` body prebuilt) and prints every route as a ratio to it. Target (issue 15):
cached reads at >= 33 % of raw aiohttp with p99 <= 20 ms. The load comes from `wrk` when it is
installed (a C load generator; Debian's package `wrk`), else from an aiohttp client in this process.
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

from bench.stack import Stack, checkout
from hireflow import embedded

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


def start_raw(port: int, body_file: Path, processes: int) -> subprocess.Popen[bytes]:
    script = str(ROOT / "bench" / "raw_aiohttp.py")
    raw = subprocess.Popen([sys.executable, script, str(port), str(body_file), str(processes)])
    embedded.wait_for_port(port, raw)
    return raw


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="WEB_CONCURRENCY (both servers)")
    parser.add_argument("--routes", default="", help="comma-separated labels to run (default: all)")
    parser.add_argument(
        "--baseline", default="", help="also measure this git commit's code (e.g. HEAD~5) in the same run"
    )
    args = parser.parse_args()

    async def load(url: str, token: str, method: str, body: str | None) -> dict[str, float]:
        if args.client == "wrk":
            return await asyncio.to_thread(run_wrk, url, token, method, args.seconds, body)
        return await run_python(url, token, method, args.seconds, body)

    clerk_id = "user_bench_caller"
    production = {
        "NODE_ENV": "production",  # JSON access log, metrics on
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(args.processes),
        "STREAM_API_KEY": "bench",
        "STREAM_API_SECRET": "bench-secret",
        "CLERK_SECRET_KEY": "sk_test_bench",
        "METRICS_TOKEN": "bench-metrics",
    }
    with (
        tempfile.TemporaryDirectory(prefix="hireflow-bench-") as tmp,
        Stack(tmp, db_on_disk=True, **production) as stack,
    ):
        web_port, _web = stack.web(log=Path(tmp) / "web.log")
        baseline_port = 0
        if args.baseline:
            root = checkout(args.baseline, Path(tmp) / "baseline")
            baseline_port, _baseline = stack.web(log=Path(tmp) / "baseline.log", root=root)
        one = await seed(stack.db_url, "bench", clerk_id)
        token = stack.key.mint(clerk_id, ttl_s=3600)
        base = f"http://127.0.0.1:{web_port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/health/ready") as ready:
                assert ready.status == 200, await ready.text()
            async with http.get(base + "/api/sessions/active", headers=headers) as active:
                body = await active.read()
        body_file = Path(tmp) / "active.json"
        body_file.write_bytes(body)
        raw_port = embedded.free_port()
        raw = start_raw(raw_port, body_file, args.processes)
        try:
            reference = await load(f"http://127.0.0.1:{raw_port}/", token, "GET", None)
        finally:
            raw.terminate()
            raw.wait()

        routes = [
            ("GET /api/sessions/active", "GET", "/api/sessions/active", None, 0.33, 20.0),
            ("GET /api/sessions/{id}", "GET", f"/api/sessions/{one}", None, 0.33, 20.0),
            ("GET /api/sessions/my-recent", "GET", "/api/sessions/my-recent", None, 0.33, 20.0),
            ("GET /health", "GET", "/health", None, None, None),
            ("POST /api/sessions", "POST", "/api/sessions", '{"problem":"Bench","difficulty":"easy"}', None, None),
        ]
        wanted = {r.strip() for r in args.routes.split(",") if r.strip()}
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, client {args.client}, {CONNECTIONS} connections, "
            f"{args.seconds} s per line, {os.cpu_count()} cores, {args.processes} process(es) per server, "
            f"load average {os.getloadavg()[0]:.2f}; raw aiohttp serves the /active body ({len(body)} bytes)"
        )
        print("CPU ms per request of the web processes, SecantusDB and Redis, from their CPU time during the line")
        print(
            f"{'route':<38}{'req/s':>8}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}"
            f"{'web':>6}{'db':>6}{'redis':>6}   target"
        )
        print(
            f"{'raw aiohttp (reference)':<38}{reference['rps']:>8.0f}{1:>7.2f}{reference['p50']:>8.2f}"
            f"{reference['p99']:>8.2f}{reference['errors']:>8.0f}"
        )
        servers = [("", base)]
        if baseline_port:
            servers.append((f"{args.baseline}: ", f"http://127.0.0.1:{baseline_port}"))
        for label, method, path, body_text, min_ratio, max_p99 in routes:
            if wanted and label not in wanted:
                continue
            for prefix, server in servers:
                before = stack.cpu_seconds()
                r = await load(server + path, token, method, body_text)
                after = stack.cpu_seconds()
                served = r["rps"] * args.seconds
                cpu = "".join(
                    f"{(after.get(role, 0.0) - before.get(role, 0.0)) * 1000 / served:>6.2f}"
                    for role in ("web", "db", "redis")
                )
                ratio = r["rps"] / reference["rps"]
                target = ""
                if min_ratio is not None and max_p99 is not None and not prefix:
                    ok = ratio >= min_ratio and r["p99"] <= max_p99 and r["errors"] == 0
                    target = f">= {min_ratio:.0%} of raw, p99 <= {max_p99:.0f} ms: {'ok' if ok else 'MISSED'}"
                print(
                    f"{prefix + label:<38}{r['rps']:>8.0f}{ratio:>7.2f}{r['p50']:>8.2f}{r['p99']:>8.2f}"
                    f"{r['errors']:>8.0f}{cpu}   {target}"
                )


if __name__ == "__main__":
    asyncio.run(main())
