"""The one application factory: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis

from hireflow import keys
from hireflow.cache import CacheVersions
from hireflow.clerk.api import ClerkApi
from hireflow.clerk.tokens import TokenVerifier
from hireflow.errors import HireFlowError
from hireflow.events import FanOut, LoggingSink
from hireflow.queue import JobQueue, JobSink
from hireflow.services.sessions import SessionService
from hireflow.services.users import UserDirectory
from hireflow.settings import Settings
from hireflow.store import mongo
from hireflow.store.sessions import SessionRepo
from hireflow.store.users import UserRepo
from hireflow.stream.clients import chat_client
from hireflow.web import appkeys as K
from hireflow.web.middleware import cors, errors
from hireflow.web.routes import chat, health, sessions

REDIS_TIMEOUT_S = 2.0


class ConfigError(HireFlowError):
    """The settings cannot run a server (raised at start-up, never to a client)."""


async def _mongo(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    if not settings.db_url:
        raise ConfigError("DB_URL is not set")
    client, db = mongo.connect(settings.db_url, timeout_ms=settings.mongo_timeout_ms)
    app[K.MONGO], app[K.DB] = client, db
    await mongo.ensure_indexes(db)
    yield
    await client.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[K.SETTINGS]
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set")
    redis = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        health_check_interval=30,
    )
    # arq's own connection (it stores pickled jobs, so no decoding); built without a ping so that
    # the web process starts, and serves from MongoDB, while Redis is down.
    arq_pool = ConnectionPool.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    arq = ArqRedis(arq_pool, default_queue_name=keys.QUEUE)
    app[K.REDIS] = redis
    app[K.VERSIONS] = CacheVersions(redis)
    app[K.QUEUE] = JobQueue(arq)
    yield
    await arq.aclose()
    await arq_pool.aclose()
    await redis.aclose()


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
    users = UserRepo(db)
    app[K.EVENTS] = FanOut([LoggingSink(), JobSink(app[K.QUEUE])])
    app[K.USERS] = UserDirectory(users, app[K.CLERK], app[K.VERSIONS], cache_max_age_s=settings.cache_max_age_s)
    app[K.SESSIONS] = SessionService(
        SessionRepo(db), users, app[K.VERSIONS], app[K.EVENTS], cache_max_age_s=settings.cache_max_age_s
    )
    yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[errors, cors(settings.allowed_origins)],
        client_max_size=settings.max_body_bytes,
    )
    app[K.SETTINGS] = settings
    app.cleanup_ctx.extend([_mongo, _redis, _integrations, _services])
    app.add_routes(health.routes)
    app.add_routes(chat.routes)
    app.add_routes(sessions.routes)
    return app
