"""WebSocket fan-out benchmark: `python bench/ws_fanout.py [--sizes 1000,10000,40000] [--processes 2]`.

The server under test (A: `run_web.py` with `WEB_CONCURRENCY` = `--processes`, its processes sharing
the port) and a second web process (B) share SecantusDB and a private Redis. For each N, N idle
authenticated lobby subscribers connect to A (the kernel spreads them over A's processes); then 100
sessions are created through B's API at 10 per second. Each event carries its creation time in the
problem text, so every subscriber can compute the delay from the `POST` being sent to the event
being received. Printed per N: A's RSS per connection (summed over its web processes, minus their
RSS before any connection), p50/p99/max delivery latency over all subscribers, events received of
those expected, A's CPU seconds during the publishing phase (all its processes), and the clients'.

Limits of one box: a process may hold at most `ulimit -n` (hard) sockets, so N is spread over client
processes of at most `--per-client` sockets each, and A needs enough processes for its share (40,000
with a hard limit of 20,000 needs three). The kernel has ~28,000 ephemeral ports per (source,
destination) address pair, so each client process binds its own loopback source address (127.0.0.2,
127.0.0.3, …). `--server-root` runs another checkout's server (e.g. main before a change) with this
benchmark, for a comparison in one sitting.

The subscribers run in two client processes on the same cores as the server, so they must cost as
little as possible: `bench/wsclient.c` (raw sockets, one epoll loop; compiled here when there is a
C compiler, else a Python twin below runs). After each wake-up they nap `--client-nap-us` before
reading, so that one wake-up serves many sockets: on loopback the kernel wakes a sleeping reader
inside the server's `send`, so a client that wakes once per event makes every send dearer, which
clients on other machines would not. The nap is counted in the latency: it makes figures worse,
never better. `--client-nap-us 0` shows the unfavourable case.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import os
import re
import resource
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import contextlib

from bench.stack import Stack
from hireflow import embedded
from tests.support.wsframes import masked_text_frame, upgrade_request

EVENTS = 100
RATE = 10.0
MIN_CLIENT_PROCESSES = 2
STAMP = re.compile(rb"bench-(\d+)-(\d+\.\d+)")


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def python_client(port: int, token: str, n: int, expected: int, outfile: str, nap_us: int, source: str) -> None:
    """The Python twin of bench/wsclient.c (same arguments, same output), for machines without a C
    compiler: N WebSocket clients on raw sockets and one epoll loop, each read scanned for stamps."""
    raise_fd_limit()
    socks: dict[int, socket.socket] = {}
    for start in range(0, n, 100):
        batch = [
            socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
            for _ in range(min(100, n - start))
        ]
        for sock in batch:
            sock.sendall(upgrade_request(f"127.0.0.1:{port}", token))
        for sock in batch:
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101"), head[:200]
            sock.sendall(masked_text_frame(b'{"type":"subscribe","topic":"lobby"}'))
            sock.setblocking(False)
            socks[sock.fileno()] = sock
    poller = select.epoll()
    for fd in socks:
        poller.register(fd, select.EPOLLIN)
    tails = dict.fromkeys(socks, b"")
    subscribed: set[int] = set()
    nxt = dict.fromkeys(socks, 0)
    seen = dict.fromkeys(socks, 0)
    latencies = array.array("d")
    cpu_start = 0.0
    deadline = time.time() + 600
    done = 0
    while done < n and time.time() < deadline:
        ready = poller.poll(1.0)
        if ready and nap_us:
            time.sleep(nap_us / 1e6)
            ready = poller.poll(0)
        for fd, _event in ready:
            try:
                data = socks[fd].recv(262144)
            except BlockingIOError:
                continue
            now = time.time()
            if not data:
                poller.unregister(fd)
                done += 1
                continue
            text = tails[fd] + data
            if fd not in subscribed and b'"type":"snapshot"' in text:
                subscribed.add(fd)
                if len(subscribed) == n:
                    cpu_start = time.process_time()
                    print("subscribed", flush=True)
            last_end = 0
            for match in STAMP.finditer(text):
                last_end = match.end()
                if int(match.group(1)) < nxt[fd]:
                    continue
                nxt[fd] = int(match.group(1)) + 1
                latencies.append(now - float(match.group(2)))
                seen[fd] += 1
                if seen[fd] == expected:
                    done += 1
            tails[fd] = text[last_end:][-80:]
    with open(outfile, "wb") as out:
        latencies.tofile(out)
    complete = sum(1 for v in seen.values() if v >= expected)
    print(f"done {complete} {time.process_time() - cpu_start:.3f}", flush=True)
    for sock in socks.values():
        sock.close()


def c_compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def client_command(tmp: str) -> list[str]:
    """bench/wsclient.c compiled, if there is a C compiler; else this file's Python client."""
    cc = c_compiler()
    if cc is not None:
        binary = Path(tmp) / "wsclient"
        if not binary.exists():
            subprocess.run([cc, "-O2", "-o", str(binary), str(ROOT / "bench" / "wsclient.c")], check=True)
        return [str(binary)]
    return [sys.executable, str(Path(__file__).resolve()), "--client"]


class Clients:
    """One client process: N subscribers; reports when all are subscribed, then the latencies."""

    def __init__(
        self, command: list[str], port: int, token: str, n: int, outfile: str, nap_us: int, source: str
    ) -> None:
        self.outfile = outfile
        self.proc = subprocess.Popen(
            [*command, str(port), token, str(n), str(EVENTS), outfile, str(nap_us), source],
            stdout=subprocess.PIPE,
            text=True,
        )

    async def line(self) -> list[str]:
        assert self.proc.stdout is not None
        text = await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        if not text:
            raise RuntimeError(f"client exited with {self.proc.wait()}")
        return text.split()

    async def subscribed(self) -> None:
        assert await self.line() == ["subscribed"]

    async def result(self) -> tuple[array.array[float], int, float]:
        kind, complete, cpu = await self.line()
        assert kind == "done"
        self.proc.wait()
        return read_latencies(self.outfile), int(complete), float(cpu)


def read_latencies(path: str) -> array.array[float]:
    latencies = array.array("d")
    latencies.frombytes(Path(path).read_bytes())
    return latencies


def proc_stat(pid: int) -> tuple[int, float]:
    """(RSS KiB, CPU seconds) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def web_processes(parent: int, count: int, port: int, timeout_s: float = 60.0) -> list[int]:
    """The pids serving A once every one of them listens: the parent itself, or its `count` children."""
    if count == 1:
        return [parent]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = psutil.Process(parent).children()
        listening = [
            c.pid for c in children if any(k.laddr.port == port and k.status == "LISTEN" for k in c.net_connections())
        ]
        if len(listening) == count:
            return listening
        time.sleep(0.2)
    raise RuntimeError(f"{count} web processes did not all listen on {port}")


def sockets_per_process(pids: list[int], port: int) -> list[int]:
    return [
        sum(1 for k in psutil.Process(pid).net_connections("tcp") if k.laddr.port == port and k.status == "ESTABLISHED")
        for pid in pids
    ]


def stop_web(parent: subprocess.Popen[bytes], pids: list[int]) -> None:
    """SIGTERM to A's parent, which closes every socket (1001) in each child; none is left behind."""
    embedded.stop(parent, timeout_s=60)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


def total_stat(pids: list[int]) -> tuple[int, float]:
    """(RSS KiB, CPU seconds) summed over processes."""
    stats = [proc_stat(pid) for pid in pids]
    return sum(r for r, _ in stats), sum(c for _, c in stats)


async def run(n: int, tmp: str, args: argparse.Namespace) -> dict[str, Any]:
    log_a = Path(tmp) / f"web-a-{n}.log"
    with Stack(tmp, server_root=Path(args.server_root)) as stack:
        # The raw clients never answer pings: no heartbeat close during a slow run (browsers answer them).
        port_a, server = stack.web(log=log_a, WEB_CONCURRENCY=str(args.processes), WS_HEARTBEAT_S="3600")
        port_b, _b = stack.web(WEB_CONCURRENCY="1")
        key, env = stack.key, stack.env
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict] = AsyncMongoClient(env["DB_URL"])
        await client.bench.users.insert_one(
            {"clerkId": "user_bench", "name": "B", "email": "b@b.test", "profileImage": ""}
        )
        await client.close()
        token = key.mint("user_bench", ttl_s=3600)
        pids = web_processes(server.pid, args.processes, port_a)
        await asyncio.sleep(2.0)
        rss_before, _ = total_stat(pids)

        clients = max(MIN_CLIENT_PROCESSES, -(-n // args.per_client))
        per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
        command = client_command(tmp)
        procs = [
            Clients(command, port_a, token, k, f"{tmp}/lat-{n}-{i}", args.client_nap_us, f"127.0.0.{2 + i}")
            for i, k in enumerate(per)
            if k
        ]
        for p in procs:
            await p.subscribed()
        await asyncio.sleep(2.0)  # idle
        rss_after, cpu_before = total_stat(pids)
        split = sockets_per_process(pids, port_a)
        spy = None
        if os.environ.get("BENCH_PROFILE"):  # e.g. "perf record -g -o /tmp/ws.data -p {pid} -- sleep 8"
            spy = subprocess.Popen(
                shlex.split(os.environ["BENCH_PROFILE"].format(pid=",".join(map(str, pids)))),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        async with aiohttp.ClientSession() as http:
            started = time.perf_counter()
            for i in range(EVENTS):
                problem = f"bench-{i}-{time.time():.6f}"
                async with http.post(
                    f"http://127.0.0.1:{port_b}/api/sessions",
                    json={"problem": problem, "difficulty": "easy"},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
                await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.perf_counter()))
        latencies: list[float] = []
        finished = 0
        client_cpu = 0.0
        for p in procs:
            lats, done, cpu = await p.result()
            latencies.extend(lats)
            finished += done
            client_cpu += cpu
        _, cpu_after = total_stat(pids)
        if spy is not None:
            spy.wait()
        stop_web(server, pids)
        lat_ms = sorted(x * 1000 for x in latencies)
        q = statistics.quantiles(lat_ms, n=100)
        return {
            "rss_per_conn_kib": (rss_after - rss_before) / n,
            "p50": q[49],
            "p99": q[98],
            "max": lat_ms[-1],
            "received": len(lat_ms),
            "expected": n * EVENTS,
            "complete": finished,
            "cpu_s": cpu_after - cpu_before,
            "client_cpu_s": client_cpu,
            "split": "/".join(map(str, split)),
        }


async def run_rooms(sessions: int, per_room: int, tmp: str) -> dict[str, float]:
    """Session topics: `sessions` rooms with `per_room` subscribers each; a join and an end per room,
    at 10 events/s through instance B; latency from each POST to every room subscriber's receipt."""
    with Stack(tmp) as stack:
        port_a, _a = stack.web()
        port_b, _b = stack.web()
        key, db_url = stack.key, stack.db_url
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict] = AsyncMongoClient(db_url)
        await client.bench.users.insert_many(
            [{"clerkId": f"user_{i}", "name": "B", "email": f"{i}@b.test", "profileImage": ""} for i in range(2)]
        )
        await client.close()
        host = {"Authorization": f"Bearer {key.mint('user_0', ttl_s=3600)}"}
        guest = {"Authorization": f"Bearer {key.mint('user_1', ttl_s=3600)}"}
        sent: dict[tuple[str, str], float] = {}
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            ids = []
            for i in range(sessions):
                async with http.post(
                    f"http://127.0.0.1:{port_b}/api/sessions",
                    headers=host,
                    json={"problem": f"room {i}", "difficulty": "easy"},
                ) as resp:
                    ids.append((await resp.json())["session"]["_id"])
            sockets = []
            for sid in ids:
                for _ in range(per_room):
                    ws = await http.ws_connect(f"http://127.0.0.1:{port_a}/api/ws", headers=host)
                    await ws.receive()
                    await ws.send_str(orjson.dumps({"type": "subscribe", "topic": f"session:{sid}"}).decode())
                    await ws.receive()
                    sockets.append(ws)

            async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
                for _ in range(2):
                    msg = await ws.receive()
                    now = time.perf_counter()
                    frame = orjson.loads(msg.data)
                    latencies.append(now - sent[(frame["session"]["_id"], frame["event"])])

            readers = [asyncio.create_task(read(ws)) for ws in sockets]
            started = time.perf_counter()
            actions = [(sid, "join", guest, "session.updated") for sid in ids] + [
                (sid, "end", host, "session.ended") for sid in ids
            ]
            for i, (sid, action, who, event) in enumerate(actions):
                sent[(sid, event)] = time.perf_counter()
                async with http.post(f"http://127.0.0.1:{port_b}/api/sessions/{sid}/{action}", headers=who) as resp:
                    assert resp.status == 200
                await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.perf_counter()))
            await asyncio.wait_for(asyncio.gather(*readers), 30)
            for ws in sockets:
                await ws.close()
        lat_ms = sorted(x * 1000 for x in latencies)
        q = statistics.quantiles(lat_ms, n=100)
        return {"p50": q[49], "p99": q[98], "max": lat_ms[-1], "received": len(lat_ms)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,40000")
    parser.add_argument(
        "--processes", type=int, default=2, help="WEB_CONCURRENCY of the server under test (40,000 needs 3 here)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=RATE,
        help="lobby events per second (10/s to 10,000 sockets saturates a 2-core box: a throughput test)",
    )
    parser.add_argument("--per-client", type=int, default=10_000, help="sockets per client process at most")
    parser.add_argument("--server-root", default=str(ROOT), help="checkout whose run_web.py serves (default: this)")
    parser.add_argument("--rooms", type=int, default=50, help="session topics in the room phase (0: skip)")
    parser.add_argument("--per-room", type=int, default=6)
    parser.add_argument(
        "--client-nap-us",
        type=int,
        default=1000,
        help="lobby clients sleep this long after a wake-up before reading (counted in the latency)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"server {args.server_root} (git {git_head(args.server_root)}), WEB_CONCURRENCY={args.processes}\n"
        f"{EVENTS} lobby events at {args.rate:g}/s through instance B, subscribers on instance A, "
        f"{os.cpu_count()} cores shared by server, clients and DB; client nap {args.client_nap_us} us; "
        f"clients: {'bench/wsclient.c' if c_compiler() else 'Python (no C compiler)'}"
    )
    print(
        f"{'N':>6}{'KiB/conn':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'received/expected':>20}{'cpu s':>7}"
        f"{'clients cpu s':>15}  sockets per process"
    )
    with tempfile.TemporaryDirectory(prefix="hireflow-bench-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            r = await run(n, tmp, args)
            print(
                f"{n:>6}{r['rss_per_conn_kib']:>10.1f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
                f"{r['received']:>10.0f}/{r['expected']:<9.0f}{r['cpu_s']:>7.1f}{r['client_cpu_s']:>15.1f}"
                f"  {r['split']}",
                flush=True,
            )
        if args.rooms:
            r = await run_rooms(args.rooms, args.per_room, tmp)
            print(
                f"session topics: {args.rooms} rooms x {args.per_room} subscribers, {2 * args.rooms} events: "
                f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms, {r['received']:.0f} deliveries"
            )


def git_head(root: str) -> str:
    done = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        port, token, n, expected, outfile, nap_us, source = sys.argv[2:]
        python_client(int(port), token, int(n), int(expected), outfile, int(nap_us), source)
    else:
        asyncio.run(main())
