"""The pad's resources for the app factory: a bytes Redis client, the relay, the store and `Pads`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from hireflow import redis_conn
from hireflow.pad.relay import Relay
from hireflow.pad.room import CLOSE_GOING_AWAY
from hireflow.pad.rooms import Pads
from hireflow.pad.store import PadStore
from hireflow.stopping import stop_then_cancel
from hireflow.store import mongo
from hireflow.web import appkeys as K

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2.0
RELAY_START_TIMEOUT_S = 2.0


async def pads_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: runs after MongoDB and Redis are set up, before the services (which add PadSink)."""
    settings = app[K.SETTINGS]
    assert settings.redis_url is not None and settings.db_url is not None  # checked by the MongoDB and Redis contexts
    # Pad updates are binary: the relay uses a bytes client (plain or through Sentinel, as REDIS_URL says).
    conns = redis_conn.clients(settings.redis_url, timeout_s=REDIS_TIMEOUT_S)
    redis: Redis = conns.arq
    # Its own MongoDB client, without retryable writes: every pad write is idempotent (a batch's `_id`,
    # a snapshot's version) and retried by the writer and the checkpointer themselves (store/mongo.py).
    mongo_client, db = mongo.connect(
        settings.db_url, timeout_ms=settings.mongo_timeout_ms, retry_writes=False, appname="hireflow-pad"
    )
    store = PadStore(db, fold_after_s=settings.pad_fold_after_s)
    await store.ensure_indexes()
    relay = Relay(redis, heartbeat_s=settings.rt_bus_heartbeat_s)
    pads = app[K.PADS] = Pads(store, relay, settings)
    listening = asyncio.create_task(relay.run(pads.on_relay, pads.repair_all))
    maintaining = asyncio.create_task(pads.maintain_forever())
    checkpointing = asyncio.create_task(pads.checkpoints.run_forever())
    await relay.wait_connected(RELAY_START_TIMEOUT_S)
    yield
    await stop_then_cancel((pads.checkpoints.stop, checkpointing), (relay.stop, listening))
    maintaining.cancel()  # it makes no MongoDB or Redis call
    await asyncio.gather(listening, maintaining, checkpointing, return_exceptions=True)
    await pads.close()
    await conns.aclose()
    await mongo_client.close()


async def close_pad_sockets(app: web.Application) -> None:
    """on_shutdown: close every pad socket with 1001 so providers reconnect to another instance."""
    pads = app.get(K.PADS)
    if pads is None:
        return
    for room in list(pads.rooms.values()):
        for sock in list(room.sockets):
            sock.close_soon(CLOSE_GOING_AWAY, "server shutting down")
