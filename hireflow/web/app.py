"""The one application factory: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from hireflow import redis_conn
from hireflow.cache import CacheVersions
from hireflow.clerk.api import ClerkApi
from hireflow.clerk.tokens import TokenVerifier
from hireflow.errors import HireFlowError
from hireflow.events import FanOut, LoggingSink
from hireflow.observability import HubCollector, Metrics, serve_metrics
from hireflow.pad.lifecycle import close_pad_sockets, pads_ctx
from hireflow.pad.presence import PadPresence
from hireflow.pad.sink import PadSink
from hireflow.piston.client import piston_client
from hireflow.piston.runtimes import RuntimeCatalog
from hireflow.queue import JobQueue, JobSink
from hireflow.quotas import Quotas
from hireflow.realtime.bus import Bus, Listener
from hireflow.realtime.hub import Hub
from hireflow.realtime.protocol import CLOSE_GOING_AWAY
from hireflow.realtime.publisher import RealtimeSink
from hireflow.realtime.seats import Seats
from hireflow.realtime.sweep import sweep_forever
from hireflow.services.run_limits import RunLimits, quota
from hireflow.services.runs import RunService
from hireflow.services.sessions import SessionService
from hireflow.services.user_sync import UserSync
from hireflow.services.users import UserDirectory
from hireflow.settings import Settings
from hireflow.stopping import stop_then_cancel
from hireflow.store import mongo
from hireflow.store.idempotency import IdempotencyRepo
from hireflow.store.runs import RunRepo
from hireflow.store.sessions import SessionRepo
from hireflow.store.users import UserRepo
from hireflow.stream.clients import chat_client
from hireflow.waiting import DependencyTimeout, wait_for
from hireflow.web import appkeys as K
from hireflow.web import docs, guards, openapi, redact
from hireflow.web.access_log import AccessLog
from hireflow.web.middleware import cors, errors, observe
from hireflow.web.origins import OriginPolicy
from hireflow.web.routes import chat, clerk_sync, frontend, health, pad, runs, sessions, ws
from hireflow.web.routes import metrics as metrics_routes

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2.0
LISTENER_START_TIMEOUT_S = 2.0


class ConfigError(HireFlowError):
    """The settings cannot run a server (raised at start-up, never to a client)."""


async def _mongo(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    if not settings.db_url:
        raise ConfigError("DB_URL is not set")
    client, db = mongo.connect(settings.db_url, timeout_ms=settings.mongo_timeout_ms)
    app[K.MONGO], app[K.DB] = client, db
    try:
        await wait_for("MongoDB", lambda: mongo.ensure_indexes(db), timeout_s=settings.startup_timeout_s)
    except BaseException:
        await client.close()
        raise
    yield
    await client.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set")
    # Built without connecting: start-up waits for Redis below, and redis_conn stays a pure function.
    conns = redis_conn.clients(settings.redis_url, timeout_s=REDIS_TIMEOUT_S)
    redis, arq = conns.main, conns.arq
    try:
        await wait_for("Redis", redis.ping, timeout_s=settings.startup_timeout_s)
    except DependencyTimeout as exc:
        # REST is served from MongoDB without Redis; the cache, the bus and the queue heal when it answers.
        log.error("starting without Redis: %s", exc)
    app[K.REDIS] = redis
    app[K.VERSIONS] = CacheVersions(redis, app[K.METRICS])
    app[K.QUEUE] = JobQueue(arq, app[K.METRICS])
    yield
    await app[K.VERSIONS].aclose()
    await conns.aclose()


async def _quotas(app: web.Application) -> AsyncIterator[None]:
    quotas = app[K.QUOTAS] = Quotas(app[K.SETTINGS], app[K.METRICS])
    yield
    await quotas.aclose()


async def _integrations(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    app[K.TOKENS] = TokenVerifier(settings)
    app[K.CLERK] = ClerkApi(settings)
    app[K.CHAT] = chat_client(settings)
    yield
    await app[K.CLERK].aclose()
    chat = app[K.CHAT]
    if chat is not None:
        await chat.close()


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    db = app[K.DB]
    users, session_repo = UserRepo(db), SessionRepo(db)
    bus = Bus(app[K.REDIS], settings)
    realtime = app[K.REALTIME] = RealtimeSink(bus, app[K.VERSIONS], app[K.METRICS])
    # PadSink last: it holds an ended session's event back for FREEZE_CHECK_EVERY_S (sink.py).
    app[K.EVENTS] = FanOut([LoggingSink(), realtime, JobSink(app[K.QUEUE]), PadSink(app[K.PADS])])
    app[K.USERS] = UserDirectory(users, app[K.CLERK], app[K.VERSIONS], cache_max_age_s=settings.cache_max_age_s)
    app[K.SESSIONS] = SessionService(
        session_repo,
        users,
        app[K.VERSIONS],
        app[K.EVENTS],
        cache_max_age_s=settings.cache_max_age_s,
        idempotency=IdempotencyRepo(db),
        stream_enabled=settings.stream_configured,
        max_active_hosted=settings.quota_active_sessions if settings.quotas_enabled else None,
    )
    listener = Listener(app[K.REDIS], heartbeat_s=settings.rt_bus_heartbeat_s)
    presence = app[K.PAD_PRESENCE] = PadPresence(
        app[K.REDIS], realtime, secrets.token_hex(6), timeout_s=settings.pad_presence_timeout_s
    )
    hub = app[K.HUB] = Hub(bus, listener, app[K.SESSIONS], app[K.VERSIONS], pad_presence=presence.read)
    app[K.METRICS].registry.register(HubCollector(hub))
    app[K.USER_SYNC] = UserSync(users, app[K.USERS], app[K.SESSIONS], session_repo, app[K.QUEUE], hub.disconnect_user)
    pads = app[K.PADS]

    async def on_control(message: bytes) -> None:
        await hub.on_control(message)
        await pads.on_control(message)

    listening = asyncio.create_task(listener.run(hub.on_event, on_control, hub.on_reconnect))
    repairing = asyncio.create_task(realtime.repair_forever(settings.rt_repair_interval_s))
    ws_limit = settings.quota_ws_per_user if settings.quotas_enabled else None
    seats = app[K.SEATS] = Seats(app[K.REDIS], ws_limit, app[K.METRICS])
    app[K.WS_ENDPOINT] = ws.Endpoint(app)
    held = lambda: [(user_id, seats.seat_id(conn.ws)) for user_id, conn in hub.user_connections()]  # noqa: E731
    renewing = asyncio.create_task(seats.renew_forever(held))
    sweeping = sweep_forever(hub, grace_s=settings.ws_token_grace_s, heartbeat_s=settings.ws_heartbeat_s)
    expiring = asyncio.create_task(sweeping)
    presencing = asyncio.create_task(presence.run_forever())
    # Serve once the bus is subscribed (or after a short wait while Redis is down: REST still works).
    await listener.wait_connected(LISTENER_START_TIMEOUT_S)
    yield
    # Stopped, not cancelled, first: a cancellation landing inside redis-py can be swallowed (stopping.py).
    await stop_then_cancel((presence.stop, presencing), (listener.stop, listening))
    for task in (repairing, renewing, expiring):
        task.cancel()
    await asyncio.gather(listening, repairing, renewing, expiring, presencing, return_exceptions=True)
    await presence.release_all()  # the pad sockets closed on shutdown: nobody here has a pad open
    await app[K.SESSIONS].aclose()
    log.info("realtime hub stats: %s", hub.stats)


async def _runs(app: web.Application) -> AsyncIterator[None]:
    """Code runs: the Piston client and its runtime list (none without PISTON_URL), and the run rules."""
    settings = app[K.SETTINGS]
    piston = app[K.PISTON] = piston_client(settings)
    catalog = app[K.RUNTIMES] = (
        RuntimeCatalog(piston, ttl_s=settings.piston_runtimes_ttl_s) if piston is not None else None
    )
    limits = RunLimits(app[K.REDIS], quota(settings))
    app[K.RUNS] = RunService(RunRepo(app[K.DB]), app[K.SESSIONS], limits, app[K.REALTIME], app[K.QUEUE], catalog)
    yield
    if piston is not None:
        await piston.aclose()


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    """`/metrics` on its own port when METRICS_PORT is set (else it is a route of this app)."""
    settings = app[K.SETTINGS]
    runner = None
    if settings.metrics_enabled and settings.metrics_port is not None:
        runner = await serve_metrics(app[K.METRICS], settings.listen_host, settings.metrics_port)
    yield
    if runner is not None:
        await runner.cleanup()


async def _close_websockets(app: web.Application) -> None:
    """On shutdown, before the cleanups: close every socket with 1001 so clients resume elsewhere."""
    await asyncio.gather(
        app[K.HUB].close_all(CLOSE_GOING_AWAY, "server shutting down"),
        app[K.WS_ENDPOINT].close_opening(CLOSE_GOING_AWAY, "server shutting down"),
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiohttp's server (`web.run_app`, `AppRunner`) that come from settings.

    aiohttp (>= 3.14) arms its keep-alive timer when a connection opens and after each response,
    and closes the connection if no complete request head has arrived when it fires, however many
    bytes trickled in meanwhile: used as the header timeout (slow-loris), and the idle timeout."""
    return {"keepalive_timeout": settings.http_header_timeout_s}


def create_app(settings: Settings) -> web.Application:
    redact.install()  # the pad WebSocket takes its token in the query string
    metrics = Metrics()
    access = AccessLog()
    origins = OriginPolicy.from_settings(settings)
    app = web.Application(
        middlewares=[
            observe(metrics, access),
            errors(metrics),
            cors(origins),
            guards.guards(origins),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[K.SETTINGS] = settings
    app[K.METRICS] = metrics
    app[K.ORIGINS] = origins
    app.cleanup_ctx.extend([_mongo, _redis, _quotas, _integrations, pads_ctx, _services, _runs, _metrics])
    app.on_shutdown.extend([_close_websockets, close_pad_sockets])

    async def flush_access_log(_app: web.Application) -> None:
        access.flush()

    app.on_cleanup.append(flush_access_log)
    app.add_routes(health.routes)
    app.add_routes(chat.routes)
    app.add_routes(sessions.routes)
    app.add_routes(runs.routes)
    app.add_routes(ws.routes)
    app.add_routes(pad.routes)
    app.add_routes(openapi.routes)
    app.add_routes(docs.routes)
    app.add_routes(metrics_routes.routes(settings))
    app.add_routes(clerk_sync.webhook_routes)
    app.add_routes(clerk_sync.inngest_routes(settings, app))
    dist = Path(settings.frontend_dist or "")
    if settings.node_env == "production" and settings.frontend_dist and dist.is_dir():
        app.add_routes(frontend.routes(dist))  # last: only what no other route matched
    return app
