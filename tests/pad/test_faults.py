"""Faults while two replicas type: SIGKILL of a web process, a Redis restart, a MongoDB restart. After
each, every replica and the stored state converge, and every edit any replica made is there. And a
SIGKILL of the web process folding old log documents: another folds them once its lease lapses."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from bson import ObjectId
from pycrdt import Doc, Text

from hireflow import embedded
from hireflow.pad.store import Batch, PadStore, PendingUpdate
from hireflow.timeutil import utcnow
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.pad import Peer, peer, start_web, two_editors
from tests.support.workers import eventually


class Typist:
    """Appends unique tokens to a replica until stopped; `typed` is every token it made."""

    def __init__(self, replica: Peer, name: str) -> None:
        self.replica, self.name = replica, name
        self.typed: list[str] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            token = f"[{self.name}{len(self.typed)}]"
            self.replica.code += token
            self.typed.append(token)
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _stored_text(mongo, session_id: str) -> str:
    stored = await PadStore(mongo).load(ObjectId(session_id))
    doc = Doc()
    doc.apply_update(stored.state)
    return str(doc.get("code", type=Text))


async def _converged(mongo, session_id: str, replicas: list[Peer], typists: list[Typist]) -> bool:
    texts = {r.text for r in replicas}
    if len(texts) != 1:
        return False
    text = texts.pop()
    if any(token not in text for t in typists for token in t.typed):
        return False
    return await _stored_text(mongo, session_id) == text


def _directory(path: Path) -> str:
    path.mkdir()
    return str(path)


@pytest.mark.timeout(120)
async def test_sigkill_of_a_web_process_mid_edit_loses_nothing(client, settings, factory: Factory, mongo, tmp_path):
    port = embedded.free_port()
    # It compacts every 5-10 updates (about five times a second here): the kill may land in a checkpoint.
    web = start_web(settings.model_copy(update={"port": port, "pad_compact_updates": 10}), tmp_path / "web.log")
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, web)
        session_id, _host, guest, a, b = await two_editors(client, f"http://127.0.0.1:{port}", factory)
        ta, tb = Typist(a, "a"), Typist(b, "b")
        await asyncio.sleep(1.0)
        web.send_signal(signal.SIGKILL)
        await asyncio.to_thread(web.wait, 10)
        await asyncio.sleep(0.3)  # B keeps typing into its local document while disconnected
        await tb.stop()
        await b.close()
        b = await peer(client, session_id, guest, doc=b.doc)  # the provider reconnects elsewhere
        tb.replica = b
        await asyncio.sleep(0.5)
        await ta.stop()
        await eventually(lambda: _converged(mongo, session_id, [a, b], [ta, tb]), timeout_s=20)
        await a.close()
        await b.close()
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()


@pytest.mark.timeout(120)
async def test_a_redis_restart_mid_edit_loses_nothing(infra, db_name, fake_clerk, mongo, factory: Factory, tmp_path):
    redis_port = embedded.free_port()
    redis_proc = embedded.start_redis(port=redis_port, directory=str(tmp_path / "redis"))
    await asyncio.to_thread(embedded.wait_for_port, redis_port, redis_proc)
    settings = make_settings(
        infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{redis_port}/0", rt_bus_heartbeat_s=0.2
    )
    one, two = await serve(create_app(settings)), await serve(create_app(settings))
    try:
        session_id, *_, a, b = await two_editors(one, two, factory)
        ta, tb = Typist(a, "a"), Typist(b, "b")
        await asyncio.sleep(0.5)
        embedded.stop(redis_proc)
        await asyncio.sleep(1.0)  # both keep typing: stored in MongoDB, not relayed
        redis_proc = embedded.start_redis(port=redis_port, directory=str(tmp_path / "redis"))
        await asyncio.to_thread(embedded.wait_for_port, redis_port, redis_proc)
        await asyncio.sleep(0.5)
        await ta.stop()
        await tb.stop()
        await eventually(lambda: _converged(mongo, session_id, [a, b], [ta, tb]), timeout_s=20)
        await a.close()
        await b.close()
    finally:
        await one.close()
        await two.close()
        embedded.stop(redis_proc)


@pytest.mark.timeout(180)
async def test_a_database_restart_mid_edit_loses_nothing(infra, fake_clerk, signing_key, redis, tmp_path):
    from pymongo import AsyncMongoClient

    mongo_port, storage = embedded.free_port(), _directory(tmp_path / "db")
    mongo_proc = embedded.start_mongo(port=mongo_port, storage_path=storage)
    await asyncio.to_thread(embedded.wait_for_port, mongo_port, mongo_proc)
    db_url = f"mongodb://127.0.0.1:{mongo_port}/pad_faults?directConnection=true"
    settings = make_settings(
        infra, "unused", *fake_clerk, db_url=db_url, mongo_timeout_ms=2000, pad_compact_updates=10
    )  # checkpoints too meet the restart
    direct: AsyncMongoClient = AsyncMongoClient(db_url, tz_aware=True)
    db = direct["pad_faults"]
    one, two = await serve(create_app(settings)), await serve(create_app(settings))
    try:
        factory = Factory(db, signing_key, fake_clerk[0])
        session_id, *_, a, b = await two_editors(one, two, factory)
        ta, tb = Typist(a, "a"), Typist(b, "b")
        await asyncio.sleep(0.5)
        embedded.stop(mongo_proc)
        await asyncio.sleep(1.0)  # both keep typing: nothing can be stored, so nothing is relayed
        mongo_proc = embedded.start_mongo(port=mongo_port, storage_path=storage)
        await asyncio.to_thread(embedded.wait_for_port, mongo_port, mongo_proc)
        await asyncio.sleep(0.5)
        await ta.stop()
        await tb.stop()
        await eventually(lambda: _converged(db, session_id, [a, b], [ta, tb]), timeout_s=60, every_s=0.5)
        await a.close()
        await b.close()
    finally:
        await one.close()
        await two.close()
        await direct.close()
        embedded.stop(mongo_proc)


@pytest.mark.timeout(120)
async def test_sigkill_of_the_web_process_folding_lets_another_fold_once_its_lease_lapses(settings, mongo, tmp_path):
    """Two `run_web.py` processes sweep every second (`PAD_FOLD_AFTER_S` 2 s: a lease of 1 s) over 300
    old batches of 20 pads. The one that takes the fold lease is SIGKILLed mid-fold, once it has written
    its first snapshots and before it deletes their batches; the other folds everything once the lease lapses,
    and every pad loads whole."""
    pads = [ObjectId() for _ in range(20)]
    docs = {pad: Doc() for pad in pads}
    store = PadStore(mongo)
    await store.ensure_indexes()
    old = utcnow() - timedelta(seconds=30)
    for seq in range(1, 301):
        entries = []
        for pad, doc in docs.items():
            before = doc.get_state()
            text = doc.get("code", type=Text)
            text += f"{seq};"
            entries.append(PendingUpdate(pad, "w", seq, doc.get_update(before)))
        await store.append(Batch(ObjectId(), old, entries))
    webs: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}
    for name in ("a", "b"):
        port, log_path = embedded.free_port(), tmp_path / f"web-{name}.log"
        web = start_web(settings.model_copy(update={"port": port, "pad_fold_after_s": 2.0}), log_path)
        webs[web.pid] = (web, log_path)
    try:

        async def holder() -> dict | None:
            return await mongo.pad_leases.find_one({"_id": "fold"})

        async def merging() -> bool:  # its first snapshots written, their batches not yet deleted
            return await mongo.pad_snapshots.count_documents({}) > 0

        lease = await eventually(holder, timeout_s=30, every_s=0.01)
        pid = int(lease["by"].split(":")[1])
        assert pid in webs
        await eventually(merging, timeout_s=10, every_s=0.005)
        killed, _log = webs.pop(pid)
        killed.send_signal(signal.SIGKILL)
        await asyncio.to_thread(killed.wait, 10)
        assert await mongo.pad_updates.count_documents({}) > 0, "the fold ended before the kill"
        ((_survivor, log_path),) = webs.values()

        async def folded() -> bool:
            done = "pad checkpoint: folded" in log_path.read_text()
            return done and await mongo.pad_updates.count_documents({}) == 0

        await eventually(folded, timeout_s=60, every_s=0.2)
        assert await mongo.pad_leases.count_documents({}) == 0  # given back
        for pad, doc in docs.items():
            stored = Doc()
            stored.apply_update((await store.load(pad)).state)
            assert str(stored.get("code", type=Text)) == str(doc.get("code", type=Text))
    finally:
        for web, _log in webs.values():
            if web.poll() is None:
                web.kill()
                web.wait()
