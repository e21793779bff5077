"""The chaos harness: the whole backend as real processes under steady load, faults, and an audit.

`ChaosRun` starts SecantusDB (on disk, so it can be restarted), a private Redis, the Stream fake, two
`run_web.py` and two `run_worker.py` processes. `Load` drives creates (each with an Idempotency-Key,
retried on any failure until acknowledged), joins and ends against both web instances, while
`Watcher`s hold WebSockets on the lobby and on session topics, resuming with `epoch`/`since` whenever
their socket drops and checking that `seq` never skips without a `reset`. After a fault, `audit()`
waits for the system to settle and reports what the issue's table asks for. `bench/chaos.py` runs
every fault; tests/test_chaos.py runs the fast ones.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

from hireflow import embedded
from tests.fakes.clerk import SigningKey
from tests.fakes.stream import FakeStream

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://localhost:5173"

# Short periods so a run settles in seconds; the figures printed are for these settings.
FAST_ENV = {
    "RECONCILE_INTERVAL_S": "2",
    "RECONCILE_AFTER_S": "3",
    "ANNOUNCE_AFTER_S": "2",
    "JOB_TIMEOUT_S": "5",
    "STREAM_TIMEOUT_S": "2",
    "MONGO_TIMEOUT_MS": "2000",
    "WORKER_POLL_DELAY_S": "0.1",
    "WORKER_METRICS_PORT": "",
    "RT_BUS_HEARTBEAT_S": "0.5",
    # A dozen users create sessions many times a minute: the per-user quotas would refuse most of them.
    "QUOTAS_ENABLED": "false",
}


class Process:
    """A child process that can be killed, paused and started again with the same command."""

    def __init__(self, name: str, start: Any, log_dir: Path) -> None:
        self.name, self._start, self._log_dir = name, start, log_dir
        self.process: subprocess.Popen[bytes] = start()
        self.restarts = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        if self.alive():
            embedded.stop(self.process)
        self.process = self._start()
        self.restarts += 1

    def stop(self) -> None:
        if self.alive():
            self.resume()
            embedded.stop(self.process)


class ChaosRun:
    def __init__(self, tmp: str) -> None:
        self.tmp = Path(tmp)
        self.key = SigningKey.generate()
        self.stream = FakeStream()
        self._stream_server = TestServer(self.stream.app())
        self.mongo_port, self.redis_port = embedded.free_port(), embedded.free_port()
        self.web_ports = [embedded.free_port(), embedded.free_port()]
        self.db_url = f"mongodb://127.0.0.1:{self.mongo_port}/chaos?directConnection=true"
        self.processes: dict[str, Process] = {}
        self.env: dict[str, str] = {}

    async def start(self) -> None:
        await self._stream_server.start_server()
        stream_url = str(self._stream_server.make_url("")).rstrip("/")
        self.env = {
            **os.environ,
            "NODE_ENV": "test",
            "DB_URL": self.db_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CLERK_JWT_KEY": self.key.public_pem,
            "CLIENT_URL": ORIGIN,
            "STREAM_API_KEY": self.stream.api_key,
            "STREAM_API_SECRET": self.stream.api_secret,
            "STREAM_CHAT_URL": stream_url,
            "STREAM_BASE_URL": stream_url,
            **FAST_ENV,
        }
        self.env = {k: v for k, v in self.env.items() if v != ""}
        storage = str(self.tmp / "db")
        self._add("mongo", lambda: embedded.start_mongo(port=self.mongo_port, storage_path=storage))
        self._add("redis", lambda: embedded.start_redis(port=self.redis_port, directory=str(self.tmp)))
        await asyncio.to_thread(embedded.wait_for_port, self.mongo_port, self.processes["mongo"].process)
        await asyncio.to_thread(embedded.wait_for_port, self.redis_port, self.processes["redis"].process)
        for i, port in enumerate(self.web_ports):
            self._add(f"web{i}", lambda port=port, i=i: self._spawn("run_web.py", f"web{i}", PORT=str(port)))
        for i in range(2):
            self._add(f"worker{i}", lambda i=i: self._spawn("run_worker.py", f"worker{i}"))
        for i, port in enumerate(self.web_ports):
            await asyncio.to_thread(embedded.wait_for_port, port, self.processes[f"web{i}"].process, timeout_s=60)

    def _add(self, name: str, start: Any) -> None:
        self.processes[name] = Process(name, start, self.tmp)

    def _spawn(self, script: str, name: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, str(ROOT / script)], env={**self.env, **env}, cwd=self.tmp, stdout=log, stderr=log
            )

    async def wait_web(self, name: str) -> None:
        port = self.web_ports[int(name[-1])]
        await asyncio.to_thread(embedded.wait_for_port, port, self.processes[name].process, timeout_s=60)

    async def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        await self._stream_server.close()

    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        return AsyncMongoClient(self.db_url, tz_aware=True, serverSelectionTimeoutMS=20_000)


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    acked: dict[str, str] = field(default_factory=dict)
    """Acknowledged creates: session id → idempotency key."""
    retried: int = 0

    def count(self, outcome: str) -> None:
        self.requests[outcome] += 1

    @property
    def answered_5xx(self) -> int:
        return sum(n for outcome, n in self.requests.items() if outcome.startswith("5"))


class Load:
    """Steady creates, joins and ends from `users` users against every web instance."""

    def __init__(self, run: ChaosRun, users: list[str], *, creates_per_s: float = 5.0) -> None:
        self._run, self._users = run, users
        self._tokens = {u: run.key.mint(u, ttl_s=3600) for u in users}
        self._interval_s = 1.0 / creates_per_s
        self.tally = Tally()
        self._open: dict[str, str] = {}
        """Acknowledged sessions that may still be joined or ended: id → host clerk id."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{random.choice(self._run.web_ports)}{path}"

    def _headers(self, user: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[user]}", **extra}

    async def _request(self, http: aiohttp.ClientSession, method: str, path: str, user: str, **kw: Any) -> Any:
        try:
            async with http.request(method, self._url(path), timeout=aiohttp.ClientTimeout(total=10), **kw) as resp:
                self.tally.count(str(resp.status))
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError):
            self.tally.count("connection_error")
            return None, None

    async def _create(self, http: aiohttp.ClientSession) -> None:
        user = random.choice(self._users)
        key = uuid.uuid4().hex
        body = {"problem": f"chaos {key}", "difficulty": "easy"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, data = await self._request(
                http, "POST", "/api/sessions", user, json=body, headers=self._headers(user, **{"Idempotency-Key": key})
            )
            if status == 201:
                self.tally.acked[data["session"]["_id"]] = key
                self._open[data["session"]["_id"]] = user
                return
            self.tally.retried += 1
            await asyncio.sleep(0.5)

    async def _join_or_end(self, http: aiohttp.ClientSession) -> None:
        if not self._open:
            return
        session_id = random.choice(list(self._open))
        host = self._open[session_id]
        if random.random() < 0.5:
            guest = random.choice([u for u in self._users if u != host])
            await self._request(http, "POST", f"/api/sessions/{session_id}/join", guest, headers=self._headers(guest))
        else:
            self._open.pop(session_id, None)
            await self._request(http, "POST", f"/api/sessions/{session_id}/end", host, headers=self._headers(host))

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self._stopping:
                for op in (self._create(http), self._join_or_end(http)):
                    task = asyncio.create_task(op)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(self._interval_s)
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping = True


@dataclass
class Watcher:
    """One WebSocket subscriber of one topic, reconnecting to any web instance and resuming."""

    run: ChaosRun
    token: str
    topic: str
    epoch: str | None = None
    seq: int | None = None
    view: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshot_at: float = 0.0
    gaps: int = 0
    resets: int = 0
    reconnects: int = 0
    seen: set[str] = field(default_factory=set)
    _stopping: bool = False

    async def run_forever(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self._stopping:
                port = random.choice(self.run.web_ports)
                try:
                    async with http.ws_connect(
                        f"http://127.0.0.1:{port}/api/ws",
                        headers={"Authorization": f"Bearer {self.token}"},
                        origin=ORIGIN,
                        heartbeat=2.0,
                    ) as ws:
                        resume = {"epoch": self.epoch, "since": self.seq} if self.epoch is not None else {}
                        await ws.send_str(orjson.dumps({"type": "subscribe", "topic": self.topic, **resume}).decode())
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                self._on(orjson.loads(msg.data))
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
                self.reconnects += 1
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self._stopping = True

    def _on(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "reset":
            self.resets += 1
            self.epoch = self.seq = None
        elif kind == "snapshot":
            self.epoch, self.seq, self.snapshot_at = frame["epoch"], frame["seq"], time.time()
            sessions = frame["sessions"] if "sessions" in frame else [frame["session"]]
            self.view = {s["_id"]: s for s in sessions if s is not None}
            self.seen.update(self.view)
        elif kind == "event":
            if self.seq is not None and frame["seq"] != self.seq + 1:
                self.gaps += 1
            self.seq = frame["seq"]
            session = frame["session"]
            self.seen.add(session["_id"])
            if self.topic == "lobby" and frame["event"] == "session.ended":
                self.view.pop(session["_id"], None)
            else:
                self.view[session["_id"]] = session


def _state(session: dict[str, Any]) -> tuple[Any, ...]:
    participant = session.get("participant")
    participant_id = participant.get("_id") if isinstance(participant, dict) else participant
    return (session["status"], str(participant_id) if participant_id else None, session["streamStatus"])


@dataclass
class Audit:
    fault: str
    acked_missing: int
    twins: int
    unannounced: int
    stale_views: int
    left_pending: int
    workers_alive: str
    ws_gaps: int
    answered_5xx: int
    ready_after_s: float
    settled_after_s: float
    details: list[str] = field(default_factory=list)

    ROW = "| {:<22} | {:>7} | {:>5} | {:>11} | {:>11} | {:>12} | {:>7} | {:>7} | {:>5} | {:>8} | {:>8} |"

    @classmethod
    def header(cls) -> str:
        names = ("fault", "missing", "twins", "unannounced", "stale views", "left pending", "workers", "ws gaps",
                 "5xx", "ready s", "settle s")  # fmt: skip
        return cls.ROW.format(*names) + "\n" + cls.ROW.format(*("---",) * len(names)).replace(" ", "-")

    def row(self) -> str:
        return self.ROW.format(
            self.fault, self.acked_missing, self.twins, self.unannounced, self.stale_views, self.left_pending,
            self.workers_alive, self.ws_gaps, self.answered_5xx, f"{self.ready_after_s:.1f}",
            f"{self.settled_after_s:.1f}",
        )  # fmt: skip

    @property
    def clean(self) -> bool:
        counts = (self.acked_missing, self.twins, self.unannounced, self.stale_views, self.left_pending, self.ws_gaps)
        return not any(counts) and self.workers_alive.split("/")[0] == self.workers_alive.split("/")[1]


async def ready_after(run: ChaosRun, since: float, timeout_s: float = 90) -> float:
    """Seconds from `since` until every web instance answers /health/ready with 200."""
    async with aiohttp.ClientSession() as http:
        pending = set(run.web_ports)
        while pending and time.monotonic() - since < timeout_s:
            for port in list(pending):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/ready", timeout=aiohttp.ClientTimeout(2)) as r:
                        if r.status == 200:
                            pending.discard(port)
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.2)
    return time.monotonic() - since


async def audit(
    run: ChaosRun, fault: str, load: Load, watchers: list[Watcher], *, ready_s: float, settle_s: float = 60
) -> Audit:
    """Wait (up to `settle_s`) until nothing is left unannounced, pending or stale, then count."""
    client = run.mongo()
    started = time.monotonic()
    try:
        while True:
            docs = {str(d["_id"]): d async for d in client.chaos.sessions.find({})}
            unannounced = sum(1 for d in docs.values() if "outbox" in d)
            pending = sum(
                1
                for d in docs.values()
                if d["streamDirty"] or (d["status"] == "active" and d["streamStatus"] == "pending")
            )
            stale_list: list[str] = []
            for w in watchers:
                for sid, seen in w.view.items():
                    doc = docs.get(sid)
                    if doc is None or _db_state(doc) != _state(seen):
                        db = _db_state(doc) if doc else None
                        stale_list.append(f"{w.topic} {sid}: saw {_state(seen)}, stored {db}")
                if w.topic == "lobby":  # every active session created since its last snapshot is in its view
                    stale_list.extend(
                        f"{w.topic} {sid}: never seen"
                        for sid, d in docs.items()
                        if d["status"] == "active"
                        and d["createdAt"].timestamp() > w.snapshot_at + 1
                        and sid not in w.view
                    )
            stale = len(stale_list)
            if not (unannounced or pending or stale) or time.monotonic() - started > settle_s:
                break
            await asyncio.sleep(0.5)
        settled = time.monotonic() - started
        problems = Counter(d["problem"] for d in docs.values())
        workers = [p for name, p in run.processes.items() if name.startswith("worker")]
        return Audit(
            fault=fault,
            acked_missing=sum(1 for sid in load.tally.acked if sid not in docs),
            twins=sum(n - 1 for n in problems.values() if n > 1),
            unannounced=unannounced,
            stale_views=stale,
            left_pending=pending,
            workers_alive=f"{sum(p.alive() for p in workers)}/{len(workers)}",
            ws_gaps=sum(w.gaps for w in watchers),
            answered_5xx=load.tally.answered_5xx,
            ready_after_s=ready_s,
            settled_after_s=settled,
            details=stale_list[:10],
        )
    finally:
        await client.close()


def _db_state(doc: dict[str, Any]) -> tuple[Any, ...]:
    participant = doc.get("participant")
    return (doc["status"], str(participant) if participant else None, doc.get("streamStatus", "pending"))


# --- faults: each injects one and returns once the faulty part is back (as a supervisor would bring it) --


async def kill_redis(run: ChaosRun, down_s: float = 10.0) -> None:
    """SIGKILL Redis; start it again, empty (it keeps nothing on disk), `down_s` later."""
    run.processes["redis"].kill()
    await asyncio.sleep(down_s)
    run.processes["redis"].restart()
    await asyncio.to_thread(embedded.wait_for_port, run.redis_port, run.processes["redis"].process)


async def pause_db(run: ChaosRun, paused_s: float = 6.0) -> None:
    """SIGSTOP the DB server for `paused_s`: connections stay open, nothing answers."""
    run.processes["mongo"].pause()
    await asyncio.sleep(paused_s)
    run.processes["mongo"].resume()


async def kill_worker(run: ChaosRun) -> None:
    """SIGKILL one worker (mid-job, under load); start a new one a second later."""
    run.processes["worker0"].kill()
    await asyncio.sleep(1.0)
    run.processes["worker0"].restart()


async def kill_web(run: ChaosRun) -> None:
    """SIGKILL one web instance (its WebSockets drop, requests in flight fail); start it again."""
    run.processes["web0"].kill()
    await asyncio.sleep(1.0)
    run.processes["web0"].restart()
    await run.wait_web("web0")


async def restart_db(run: ChaosRun) -> None:
    """Stop the DB server (SIGTERM) and start it again on the same port and data."""
    run.processes["mongo"].restart()
    await asyncio.to_thread(embedded.wait_for_port, run.mongo_port, run.processes["mongo"].process, timeout_s=60)


FAULTS = {
    "redis killed 10 s": kill_redis,
    "db paused 6 s": pause_db,
    "worker SIGKILL": kill_worker,
    "web SIGKILL": kill_web,
    "db restarted": restart_db,
}


async def seed_users(run: ChaosRun, count: int) -> list[str]:
    client = run.mongo()
    try:
        ids = [f"user_chaos_{i}" for i in range(count)]
        await client.chaos.users.insert_many(
            [{"clerkId": u, "name": u, "email": f"{u}@chaos.test", "profileImage": ""} for u in ids]
        )
        return ids
    finally:
        await client.close()


async def run_chaos(
    tmp: str,
    faults: list[str],
    *,
    warmup_s: float = 5.0,
    after_s: float = 3.0,
    users: int = 12,
    creates_per_s: float = 5.0,
    settle_s: float = 60.0,
) -> list[Audit]:
    """For each fault in turn: load for `warmup_s`, the fault (load goes on), `after_s` more load,
    then stop the load and audit. Watchers stay connected (and resume) across all faults."""
    run = ChaosRun(tmp)
    await run.start()
    tasks: list[asyncio.Task[None]] = []
    watchers: list[Watcher] = []
    audits: list[Audit] = []
    try:
        ids = await seed_users(run, users)
        token = run.key.mint(ids[0], ttl_s=3600)
        watchers = [Watcher(run, token, "lobby"), Watcher(run, token, "lobby")]
        tasks = [asyncio.create_task(w.run_forever()) for w in watchers]
        for i, name in enumerate(faults):
            load = Load(run, ids, creates_per_s=creates_per_s)
            loading = asyncio.create_task(load.run())
            await asyncio.sleep(warmup_s)
            if i == 0:  # watch a few sessions' own topics too
                for sid in list(load.tally.acked)[:3]:
                    watchers.append(Watcher(run, token, f"session:{sid}"))
                    tasks.append(asyncio.create_task(watchers[-1].run_forever()))
            await FAULTS[name](run)
            ready = asyncio.create_task(ready_after(run, time.monotonic()))
            await asyncio.sleep(after_s)
            load.stop()
            await loading
            audits.append(await audit(run, name, load, watchers, ready_s=await ready, settle_s=settle_s))
        return audits
    finally:
        for w in watchers:
            w.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await run.stop()
