"""Forged-token benchmark: `python bench/forged_tokens.py`.

Issue 12 measured that, with token verification through Clerk's key set (no `CLERK_JWT_KEY`), tokens
with the real `kid` and a bad signature made the SDK re-fetch the key set for each one: 10 clients for
10 s caused 287 fetches and raised everyone's latency from 3 ms to 490 ms. This starts SecantusDB, a
private Redis, the Clerk fake (counting key-set fetches) and `run_web.py`, then runs, for the same
duration each:

- reference: 10 clients sending valid tokens;
- attack: 10 clients sending forged tokens (real `kid`, bad signature) while one client sends valid
  tokens;

and prints, per run, the key-set fetches, the forged requests' statuses and the valid requests'
p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack
from hireflow import embedded
from tests.fakes.clerk import FakeClerk, SigningKey

CLIENTS = 10


async def hammer(url: str, tokens: list[str], until: float, latencies: list[float], statuses: Counter[int]) -> None:
    async with aiohttp.ClientSession() as http:
        i = 0
        while time.monotonic() < until:
            token = tokens[i % len(tokens)]
            i += 1
            started = time.perf_counter()
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[resp.status] += 1


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


async def run(duration_s: float) -> None:
    key = SigningKey.generate()
    clerk = FakeClerk(keys=[key])
    runner = web.AppRunner(clerk.app(), access_log=None)
    await runner.setup()
    clerk_port = embedded.free_port()
    await web.TCPSite(runner, "127.0.0.1", clerk_port).start()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "CLERK_JWT_KEY": "",
            "CLERK_SECRET_KEY": clerk.secret_key,
            "CLERK_API_URL": f"http://127.0.0.1:{clerk_port}",
        }
        with Stack(tmp, **env) as stack:
            client: AsyncMongoClient[dict] = AsyncMongoClient(stack.db_url)
            await client.bench.users.insert_one(
                {"clerkId": "user_bench", "name": "Bench", "email": "b@bench.test", "profileImage": ""}
            )
            await client.close()
            port, _web = stack.web()
            url = f"http://127.0.0.1:{port}/api/sessions/active"
            valid = [key.mint("user_bench", ttl_s=3600) for _ in range(1)]
            forger = SigningKey.generate()
            forged = [forger.mint("user_bench", kid=key.kid, ttl_s=3600) for _ in range(2000)]

            print(
                f"{'run':<10} {'fetches':>8} {'forged req':>11} {'forged 401':>11} {'valid req':>10} "
                f"{'valid p50 ms':>13} {'valid p99 ms':>13}"
            )
            for name, attackers in (("reference", 0), ("attack", CLIENTS)):
                before = clerk.jwks_fetches
                until = time.monotonic() + duration_s
                good_lat: list[float] = []
                good_status: Counter[int] = Counter()
                bad_lat: list[float] = []
                bad_status: Counter[int] = Counter()
                valid_clients = CLIENTS if attackers == 0 else 1
                await asyncio.gather(
                    *(hammer(url, valid, until, good_lat, good_status) for _ in range(valid_clients)),
                    *(hammer(url, forged, until, bad_lat, bad_status) for _ in range(attackers)),
                )
                assert set(good_status) == {200}, good_status
                print(
                    f"{name:<10} {clerk.jwks_fetches - before:>8} {sum(bad_status.values()):>11} "
                    f"{bad_status.get(401, 0):>11} {len(good_lat):>10} {pct(good_lat, 50):>13.1f} "
                    f"{pct(good_lat, 99):>13.1f}"
                )
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    args = parser.parse_args()
    asyncio.run(run(args.duration))


if __name__ == "__main__":
    main()
