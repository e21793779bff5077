"""Live pad benchmark: `python bench/pad.py [--pads 50,500] [--rate 5] [--seconds 20]`.

Two web processes (A, B) share SecantusDB and a private Redis. For each size N (the first is the
reference run), N sessions get a pad with two editors, one connected to A and one to B; every editor
types one character at a random place `--rate` times a second for `--seconds`. Each editor is a pycrdt
document speaking y-websocket. The editors run in two client processes on the same two cores as the
servers (their CPU is printed too), so they spend as little as they can while the clock runs:
keystrokes are typed into the document beforehand (the frames a browser would send), and what an
editor receives is timed on arrival and merged at the end (see `Editor`). The client processes are
bench/padclient.c (raw sockets on one epoll loop: they send the prepared frames on time and record
what arrives, decoded here afterwards), compiled here when there is a C compiler; else, or with
`--python-editors`, Python processes on aiohttp (at 500 pads they took 11-12 s of CPU in 20 s, the C
ones 2.5-3).

Printed per N: keystroke-to-peer latency p50/p99/max (from the editor sending its update to its peer on
the other instance having received it: stored in MongoDB, relayed through Redis, forwarded), the web
processes', the database's and the editors' CPU seconds during typing, server RSS per open idle pad (A's RSS with N
pads open and idle, minus before, over N), stored updates/s (the updates stored for the typing phase,
from the stored sequence numbers: each pad life numbers its updates 1, 2, …; read once the editors are
done, as reading the whole log while they type stalled SecantusDB for a few hundred ms, and divided by
the phase's length; checkpoints run as configured, unless `--no-checkpoints`), and whether anything was
lost: every pad's two replicas and its stored state must be equal.

`--drop-relay-at S` cuts every pub/sub connection of the Redis at S s of typing: both web processes'
relay subscriptions reconnect and every room repairs from MongoDB, and the keystrokes of those
seconds reach their peers only through that repair (see their latency with `--timeline`).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bson import ObjectId
from pycrdt import Decoder, Doc, Text, create_update_message
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from bench.stack import Stack, checkout
from bench.ws_fanout import c_compiler, proc_stat, raise_fd_limit
from hireflow.pad.store import PadStore

CLIENT_PROCESSES = 2
ORIGIN = "http://localhost:5173"


def state_vector(encoded: bytes) -> dict[int, int]:
    decoder = Decoder(encoded)
    return {decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())}


class Editor:
    """One replica on a WebSocket. Its keystrokes are typed into its pycrdt document before the clock
    starts (`prepare`: one character at a random place each, as the y-websocket update frames a
    browser would send), so that the typing phase spends the shared cores on sending, not on Yjs; what
    it receives is applied to that document, whose state vector says how far the peer's clock got,
    and the replica's final text is rebuilt at the end from what it sent and received (`final_text`).
    `sent_at[k]` is when its clock `k + 1` was sent: a keystroke's latency runs from then to the first
    frame that brings it to the peer."""

    def __init__(self, rng: random.Random, ws: aiohttp.ClientWebSocketResponse | None = None) -> None:
        self.ws = ws
        """Its socket, for the Python editors (`client_main`); bench/padclient.c keeps its own."""
        self.doc: Doc[Any] = Doc()
        self.rng = rng
        self.frames: list[bytes] = []
        self.updates: list[bytes] = []
        self.sent_at: list[float] = []
        self.received: list[bytes] = []
        self.seen = 0
        """The peer's clock this replica has received up to."""
        self.peer: Editor | None = None

    def prepare(self, keystrokes: int) -> None:
        code = self.doc.get("code", type=Text)
        for _ in range(keystrokes):
            before = self.doc.get_state()
            code.insert(self.rng.randint(0, len(code)), self.rng.choice("abcdefgh"))
            self.updates.append(self.doc.get_update(before))
            self.frames.append(create_update_message(self.updates[-1]))

    async def type_one(self) -> None:
        if len(self.sent_at) == len(self.frames):
            return
        assert self.ws is not None
        self.sent_at.append(time.time())
        await self.ws.send_bytes(self.frames[len(self.sent_at) - 1])

    async def read(self, latencies: list[tuple[float, float]]) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            self.receive(msg.data, time.time(), latencies)

    def receive(self, data: bytes, at: float, latencies: list[tuple[float, float]]) -> None:
        """A frame that arrived at `at`: (sent at, latency) of every peer keystroke it is the first to bring."""
        peer = self.peer
        assert peer is not None
        if data[:2] != b"\x00\x02":  # only sync updates carry the peer's keystrokes
            return
        payload = Decoder(data[2:]).read_message()
        assert payload is not None
        self.received.append(payload)
        self.doc.apply_update(payload)  # (an update's own state vector counts only from clock 0)
        seen = state_vector(self.doc.get_state()).get(peer.doc.client_id, 0)
        if seen > self.seen:
            latencies += [(sent, at - sent) for sent in peer.sent_at[self.seen : seen]]
            self.seen = seen

    def unseen_by_peer(self) -> int:
        assert self.peer is not None
        return len(self.sent_at) - self.peer.seen

    def final_text(self) -> str:
        """What this replica holds: its sent keystrokes and everything it received."""
        doc: Doc[Any] = Doc()
        for update in self.updates[: len(self.sent_at)] + self.received:
            doc.apply_update(update)
        return str(doc.get("code", type=Text))


def editor_pairs(spec: dict[str, Any], rng: random.Random) -> list[tuple[str, Editor, Editor]]:
    """Both editors of each of the spec's pads (A's first), peered, their keystrokes prepared: the same
    for either kind of client process."""
    keystrokes = int(spec["rate"] * spec["seconds"]) + 1
    pairs = []
    for pad, _token_a, _token_b in spec["pads"]:
        a, b = Editor(random.Random(rng.random())), Editor(random.Random(rng.random()))
        a.peer, b.peer = b, a
        a.prepare(keystrokes)
        b.prepare(keystrokes)
        pairs.append((pad, a, b))
    return pairs


def outcome(pairs: list[tuple[str, Editor, Editor]], latencies: list[tuple[float, float]]) -> dict[str, Any]:
    """What a client process reports: latencies, each pad's two final texts, keystrokes never seen."""
    return {
        "latencies": latencies,
        "texts": {pad: [a.final_text(), b.final_text()] for pad, a, b in pairs},
        "unseen": sum(a.unseen_by_peer() + b.unseen_by_peer() for _pad, a, b in pairs),
    }


async def client_main(spec: dict[str, Any]) -> None:
    """A client process: both editors of its pads; writes latencies and final texts to `spec["out"]`."""
    rng = random.Random(spec["seed"])
    connector = aiohttp.TCPConnector(limit=0)
    http = aiohttp.ClientSession(connector=connector)
    editors = editor_pairs(spec, rng)
    for (pad, token_a, token_b), (_pad, a, b) in zip(spec["pads"], editors, strict=True):
        for editor, port, token in ((a, spec["port_a"], token_a), (b, spec["port_b"], token_b)):
            editor.ws = await http.ws_connect(
                f"http://127.0.0.1:{port}/api/sessions/{pad}/pad", params={"token": token}, origin=ORIGIN
            )
    latencies: list[tuple[float, float]] = []
    readers = [asyncio.create_task(e.read(latencies)) for _, a, b in editors for e in (a, b)]
    print("connected", flush=True)
    sys.stdin.readline()  # the parent measured idle RSS: go

    # One ticker for every editor of this process (not a sleeping task each): each types `rate` times a
    # second from a random phase, and late ticks are not made up.
    all_editors = [e for _, a, b in editors for e in (a, b)]
    period = 1 / spec["rate"]
    start = time.monotonic()
    due = sorted((start + rng.random() * period, i) for i in range(len(all_editors)))
    deadline = start + spec["seconds"]
    while due and due[0][0] < deadline:
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, i = heapq.heappop(due)
            await all_editors[i].type_one()
            if at + period < deadline:
                heapq.heappush(due, (max(at + period, now), i))
        if due:
            await asyncio.sleep(max(0.0, due[0][0] - time.monotonic()))
    # Let the backlog drain: until every edit reached its peer, or `settle_s` passed.
    deadline = time.monotonic() + spec["settle_s"]
    while time.monotonic() < deadline and any(e.unseen_by_peer() for _, a, b in editors for e in (a, b)):
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    result = json.dumps(outcome(editors, latencies))
    for task in readers:
        task.cancel()
    await http.close()
    await asyncio.to_thread(Path(spec["out"]).write_text, result)


class PythonEditors:
    """A client process of Python editors (`client_main`): for machines without a C compiler."""

    def __init__(self, spec: dict[str, Any], spec_path: Path) -> None:
        spec_path.write_text(json.dumps(spec))
        self.out = Path(spec["out"])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--client", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def results(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data


class CEditors:
    """A bench/padclient.c process for both editors of some pads. Their keystrokes are prepared here
    (`Editor.prepare`, as the Python editors do) and handed over as frames; once it exited, what each
    editor received is replayed here through `Editor.receive`, with the arrival times it recorded."""

    def __init__(self, binary: Path, spec: dict[str, Any], spec_path: Path) -> None:
        self.pairs = editor_pairs(spec, random.Random(spec["seed"]))
        self.editors = [editor for _pad, a, b in self.pairs for editor in (a, b)]
        parts = [f"{len(self.editors)} {spec['rate']} {spec['seconds']} {spec['settle_s']} {spec['seed']}\n".encode()]
        for (pad, token_a, token_b), (_pad, a, b) in zip(spec["pads"], self.pairs, strict=True):
            for editor, port, token in ((a, spec["port_a"], token_a), (b, spec["port_b"], token_b)):
                parts.append(f"{port} /api/sessions/{pad}/pad?token={token}\n{len(editor.frames)}\n".encode())
                parts += [f"{len(frame)}\n".encode() + frame for frame in editor.frames]
        spec_path.write_bytes(b"".join(parts))
        self.out = Path(spec["out"])
        self.proc = subprocess.Popen(
            [str(binary), str(spec_path), str(self.out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def results(self) -> dict[str, Any]:
        sent = Path(f"{self.out}.sent").read_bytes()
        at = 0
        for editor in self.editors:
            (count,) = struct.unpack_from("=I", sent, at)
            editor.sent_at = list(struct.unpack_from(f"={count}d", sent, at + 4))
            at += 4 + 8 * count
        latencies: list[tuple[float, float]] = []
        received = self.out.read_bytes()
        at = 0
        while at < len(received):
            index, length, arrived = struct.unpack_from("=IId", received, at)
            at += 16
            self.editors[index].receive(received[at : at + length], arrived, latencies)
            at += length
        return outcome(self.pairs, latencies)


def padclient(tmp: str) -> Path | None:
    """bench/padclient.c compiled, if there is a C compiler; else None (the Python editors run)."""
    cc = c_compiler()
    if cc is None:
        return None
    binary = Path(tmp) / "padclient"
    if not binary.exists():
        subprocess.run([cc, "-O2", "-o", str(binary), str(ROOT / "bench" / "padclient.c")], check=True)
    return binary


async def make_sessions(stack: Stack, port: int, n: int) -> list[tuple[str, str, str]]:
    """N sessions through the API (host creates, guest joins), 20 at a time."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.db_url)
    db = client.get_default_database()
    url = f"http://127.0.0.1:{port}/api/sessions"

    async def one(http: aiohttp.ClientSession, i: int) -> tuple[str, str, str]:
        ids = [f"user_bench_{i}_{role}_{ObjectId()}" for role in ("host", "guest")]
        await db.users.insert_many(
            [{"clerkId": c, "name": c, "email": f"{c}@example.com", "profileImage": ""} for c in ids]
        )
        host, guest = (stack.key.mint(c, ttl_s=3600) for c in ids)
        async with http.post(url, json={"problem": "P", "difficulty": "easy"}, headers=_auth(host)) as resp:
            session_id: str = (await resp.json())["session"]["_id"]
        async with http.post(f"{url}/{session_id}/join", headers=_auth(guest)) as resp:
            assert resp.status == 200, await resp.text()
        return session_id, host, guest

    out: list[tuple[str, str, str]] = []
    async with aiohttp.ClientSession() as http:
        for start in range(0, n, 20):
            out += await asyncio.gather(*(one(http, i) for i in range(start, min(n, start + 20))))
    await client.close()
    return out


def copy_logs(tmp: str, n: int, dest: str) -> None:
    Path(dest).mkdir(parents=True, exist_ok=True)
    for name in (f"web-a-{n}.log", f"web-b-{n}.log"):
        shutil.copy(Path(tmp) / name, Path(dest) / name)


async def stored_updates(db: Any) -> int:
    """Updates stored so far: per pad and writer life, the highest sequence number in the log or in the
    pad's snapshot (the log is read first: a checkpoint meanwhile moves entries into snapshots read after)."""
    top: dict[tuple[str, str], int] = {}
    async for doc in db.pad_updates.find({}, {"u": 1}):
        for pad, entries in doc["u"].items():
            for entry in entries:
                top[(pad, entry["s"])] = max(top.get((pad, entry["s"]), 0), entry["q"])
    async for snap in db.pad_snapshots.find({}, {"marks": 1}):
        for src, seq in snap.get("marks", {}).items():
            top[(str(snap["_id"]), src)] = max(top.get((str(snap["_id"]), src), 0), seq)
    return sum(top.values())


async def drop_relay(redis_url: str, at_s: float) -> None:
    """At `at_s` s of typing, cut every pub/sub connection of the stack's Redis (as a network blip or a
    failover would): each web process's relay subscription reconnects, and every room it has repairs
    from MongoDB (what was published meanwhile is lost to the relay, not to the store)."""
    await asyncio.sleep(at_s)
    redis = Redis.from_url(redis_url)
    try:
        await redis.client_kill_filter(_type="pubsub")
    finally:
        await redis.aclose()
    print(f"dropped every pub/sub connection at {at_s:g} s of typing", file=sys.stderr, flush=True)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(n: int, args: argparse.Namespace, tmp: str, server_root: Path = ROOT) -> dict[str, Any]:
    env = {"METRICS_ENABLED": "false"}
    if args.no_checkpoints:  # as the benchmark ran before batches were shared: nothing folded meanwhile
        env["PAD_COMPACT_UPDATES"] = "1000000"
    with Stack(tmp, server_root=server_root, **env) as stack:
        port_a, web_a = stack.web(log=Path(tmp) / f"web-a-{n}.log")
        port_b, web_b = stack.web(log=Path(tmp) / f"web-b-{n}.log")
        db_pid, redis_pid = stack.children[0].pid, stack.children[1].pid
        sessions = await make_sessions(stack, port_a, n)
        rss_before, _ = proc_stat(web_a.pid)
        chunks = [sessions[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
        binary = None if args.python_editors else padclient(tmp)
        clients: list[PythonEditors | CEditors] = []
        for i, chunk in enumerate(chunks):
            spec = {
                "pads": chunk,
                "port_a": port_a,
                "port_b": port_b,
                "rate": args.rate,
                "seconds": args.seconds,
                "settle_s": args.settle,
                "seed": i,
                "out": str(Path(tmp) / f"client-{n}-{i}.out"),
            }
            spec_path = Path(tmp) / f"client-{n}-{i}.spec"
            clients.append(PythonEditors(spec, spec_path) if binary is None else CEditors(binary, spec, spec_path))
        for client in clients:
            assert client.proc.stdout is not None and client.proc.stdout.readline().strip() == "connected"
        await asyncio.sleep(2.0)  # idle: every pad loaded on both instances
        rss_idle, _ = proc_stat(web_a.pid)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.db_url)
        db = mongo.get_default_database()
        stored_before = await stored_updates(db)
        watched = [web_a.pid, web_b.pid, db_pid, *(client.proc.pid for client in clients)]
        cpu_before = [proc_stat(pid)[1] for pid in watched]
        started, started_at = time.monotonic(), time.time()
        print(f"typing: {n} pads, {args.seconds:g} s", file=sys.stderr, flush=True)  # for a profiler to wait on
        for client in clients:
            assert client.proc.stdin is not None
            client.proc.stdin.write("go\n")
            client.proc.stdin.flush()
        dropping = asyncio.create_task(drop_relay(stack.redis_url, args.drop_relay_at)) if args.drop_relay_at else None
        samples = await cpu_samples([*watched[:3], redis_pid, *watched[3:]], args.seconds) if args.timeline else []
        await asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        if dropping is not None:
            await dropping
        elapsed = time.monotonic() - started
        cpu_after = [proc_stat(pid)[1] for pid in watched]
        client_cpu = sum(cpu_after[3:]) - sum(cpu_before[3:])
        for client in clients:
            await asyncio.to_thread(client.proc.wait, args.seconds + args.settle + 120)
        stored_after = await stored_updates(db)
        latencies: list[tuple[float, float]] = []
        texts: dict[str, list[str]] = {}
        unseen = 0
        for client in clients:
            data = client.results()
            latencies += data["latencies"]
            texts.update(data["texts"])
            unseen += data["unseen"]
        store = PadStore(db)
        mismatched = 0
        for pad, (a, b) in texts.items():
            stored = await store.load(ObjectId(pad))
            doc: Doc[Any] = Doc()
            doc.apply_update(stored.state)
            if not (a == b == str(doc.get("code", type=Text))):
                mismatched += 1
        if args.logs:
            copy_logs(tmp, n, args.logs)
        await mongo.close()
    ms = [latency * 1000 for _sent, latency in latencies]
    if args.timeline:
        timeline(latencies, started_at, args.seconds, samples)
    return {
        "pads": n,
        "edits": len(latencies) + unseen,
        "p50": percentile(ms, 0.5),
        "p99": percentile(ms, 0.99),
        "max": max(ms) if ms else 0.0,
        "web_cpu": (cpu_after[0] - cpu_before[0]) + (cpu_after[1] - cpu_before[1]),
        "db_cpu": cpu_after[2] - cpu_before[2],
        "client_cpu": client_cpu,
        "kib_per_pad": (rss_idle - rss_before) / n,
        "stored_per_s": (stored_after - stored_before) / elapsed,
        "unseen": unseen,
        "mismatched": mismatched,
    }


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def cpu_samples(pids: list[int], seconds: float) -> list[list[float]]:
    """Every half second of typing: the CPU seconds so far of each of `pids` and of the whole machine
    (last), so that the timeline can tell a slow half second of ours from a busy machine."""
    samples = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index in range(int(seconds / 0.5) + 1):
        samples.append([proc_stat(pid)[1] for pid in pids] + [machine_busy()])
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.5 - loop.time()))
        if loop.time() - started > seconds:
            break
    samples.append([proc_stat(pid)[1] for pid in pids] + [machine_busy()])
    return samples


def timeline(
    latencies: list[tuple[float, float]], started_at: float, seconds: float, samples: list[list[float]]
) -> None:
    """Keystroke latency by when it was sent, per half second of typing (on stderr): when the tail
    happens, to set beside the web processes' logs (checkpoints) or a profile. With the CPU each
    process used in that half second, in % of one core: web A, web B, SecantusDB, Redis, the editors,
    and everything else on the machine (all cores busy minus ours), which tells a slow half second of
    ours from a busy machine."""
    buckets: dict[int, list[float]] = {}
    for sent, latency in latencies:
        buckets.setdefault(int((sent - started_at) / 0.5), []).append(latency * 1000)
    print(f"typing started at {datetime.fromtimestamp(started_at, UTC).isoformat()}", file=sys.stderr)
    print(
        "  t s | keystrokes | p50 ms | p99 ms | max ms | web A % | web B % | DB % | Redis % | editors % | other %",
        file=sys.stderr,
    )
    for index in range(int(seconds / 0.5) + 1):
        ms = buckets.get(index, [])
        if not ms:
            continue
        cpu = ""
        if index + 1 < len(samples):
            used = [(after - before) * 200 for before, after in zip(samples[index], samples[index + 1], strict=True)]
            web_a, web_b, db, redis, editors = used[0], used[1], used[2], used[3], sum(used[4:-1])
            other = used[-1] - sum(used[:-1])
            cpu = f" | {web_a:7.0f} | {web_b:7.0f} | {db:4.0f} | {redis:7.0f} | {editors:9.0f} | {other:7.0f}"
        print(
            f"{index * 0.5:5.1f} | {len(ms):10d} | {percentile(ms, 0.5):6.1f} | {percentile(ms, 0.99):6.1f} "
            f"| {max(ms):6.1f}{cpu}",
            file=sys.stderr,
        )


async def reference(tmp: str, batch: int, *, one_document: bool, seconds: float = 5.0) -> tuple[float, float]:
    """SecantusDB alone, for `seconds`: `batch` small updates of as many pads stored as `batch` documents
    (insert_many, one per pad: the former layout) or as one (the batch layout); (updates/s, ms a call)."""
    with Stack(tmp) as stack:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.db_url)
        log = mongo.get_default_database().ref
        pads = [str(ObjectId()) for _ in range(batch)]
        calls, started, seq = 0, time.monotonic(), 0
        while time.monotonic() - started < seconds:
            seq += 1
            entries = [{"s": "ref", "f": seq, "q": seq, "u": b"x" * 30} for _ in pads]
            if one_document:
                await log.insert_one({"pads": pads, "u": dict(zip(pads, ([e] for e in entries), strict=True))})
            else:
                await log.insert_many([{"pad": pad, **entry} for pad, entry in zip(pads, entries, strict=True)])
            calls += 1
        elapsed = time.monotonic() - started
        await mongo.close()
    return calls * batch / elapsed, elapsed * 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pads", default="50,500", help="sizes; the first is the reference run")
    parser.add_argument("--rate", type=float, default=5.0, help="keystrokes per second per editor")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=180.0, help="longest wait for the backlog to drain")
    parser.add_argument("--logs", help="copy the web processes' logs into this folder")
    parser.add_argument("--no-checkpoints", action="store_true", help="fold nothing during the run")
    parser.add_argument("--baseline", default="", help="also run this git commit's server (e.g. HEAD~5), first")
    parser.add_argument("--no-reference", action="store_true", help="skip SecantusDB's insert rates alone")
    parser.add_argument("--timeline", action="store_true", help="latency and CPU per half second of typing, on stderr")
    parser.add_argument("--python-editors", action="store_true", help="editors in Python, not bench/padclient.c")
    parser.add_argument(
        "--drop-relay-at", type=float, default=0.0, help="cut Redis's pub/sub connections at this second of typing"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        uvloop.run(client_main(json.loads(Path(args.client).read_text())))
        return
    raise_fd_limit()
    print(f"{args.rate:g} keystrokes/s per editor, two editors per pad (one per web instance), {args.seconds:g} s")
    print(
        "| pads | edits | p50 ms | p99 ms | max ms | web CPU s | DB CPU s | client CPU s | KiB/idle pad "
        "| stored/s | lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="hireflow-bench-pad-") as tmp:
        for batch in () if args.no_reference else (50, 500):  # the reference: what the database allows at all
            for one in (False, True):
                per_s, call_ms = asyncio.run(reference(tmp, batch, one_document=one))
                how = "as one document" if one else "as many documents (insert_many)"
                print(f"reference: SecantusDB alone, {batch} updates {how}: {per_s:.0f} updates/s, {call_ms:.0f} ms")
        roots = [("", ROOT)]
        if args.baseline:  # first, then this code: the same sitting, the same clients
            roots.insert(0, (f"{args.baseline}: ", checkout(args.baseline, Path(tmp) / "baseline")))
        for n in (int(x) for x in args.pads.split(",")):
            for label, root in roots:
                r = asyncio.run(run(n, args, tmp, root))
                ok = r["unseen"] == 0 and r["mismatched"] == 0
                lost = "nothing" if ok else f"{r['unseen']} unseen, {r['mismatched']} pads differ"
                print(
                    f"| {label}{r['pads']} | {r['edits']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} "
                    f"| {r['web_cpu']:.1f} | {r['db_cpu']:.1f} | {r['client_cpu']:.1f} | {r['kib_per_pad']:.1f} "
                    f"| {r['stored_per_s']:.0f} | {lost} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
