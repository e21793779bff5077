"""Typed keys for everything the application holds; each is set by one cleanup context in app.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis
from stream_chat import StreamChatAsync

from hireflow.cache import CacheVersions
from hireflow.clerk.api import ClerkApi
from hireflow.clerk.tokens import TokenVerifier
from hireflow.events import EventSink
from hireflow.observability import Metrics
from hireflow.pad.presence import PadPresence
from hireflow.pad.rooms import Pads
from hireflow.piston.client import PistonClient
from hireflow.piston.runtimes import RuntimeCatalog
from hireflow.queue import JobQueue
from hireflow.quotas import Quotas
from hireflow.realtime.hub import Hub
from hireflow.realtime.publisher import RealtimeSink
from hireflow.realtime.seats import Seats
from hireflow.services.runs import RunService
from hireflow.services.sessions import SessionService
from hireflow.services.user_sync import UserSync
from hireflow.services.users import UserDirectory
from hireflow.settings import Settings
from hireflow.store.mongo import Document
from hireflow.web.origins import OriginPolicy

if TYPE_CHECKING:
    from hireflow.web.routes.ws import Endpoint

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
MONGO = web.AppKey("mongo", AsyncMongoClient[Document])
DB = web.AppKey("db", AsyncDatabase[Document])
REDIS = web.AppKey("redis", Redis)
VERSIONS = web.AppKey("versions", CacheVersions)
CLERK = web.AppKey("clerk", ClerkApi)
TOKENS = web.AppKey("tokens", TokenVerifier)
EVENTS = web.AppKey("events", EventSink)
QUEUE = web.AppKey("queue", JobQueue)
HUB = web.AppKey("hub", Hub)
USER_SYNC = web.AppKey("user_sync", UserSync)
USERS = web.AppKey("users", UserDirectory)
SESSIONS = web.AppKey("sessions", SessionService)
QUOTAS = web.AppKey("quotas", Quotas)
SEATS = web.AppKey("seats", Seats)
# What every `/api/ws` socket's messages go to once the handler has returned (web/routes/ws.py).
WS_ENDPOINT: web.AppKey[Endpoint] = web.AppKey("ws_endpoint")
PADS = web.AppKey("pads", Pads)
PAD_PRESENCE = web.AppKey("pad_presence", PadPresence)
CHAT: web.AppKey[StreamChatAsync | None] = web.AppKey("chat")
ORIGINS = web.AppKey("origins", OriginPolicy)
REALTIME = web.AppKey("realtime", RealtimeSink)
# Code runs: the engine and its runtimes (None without PISTON_URL), and the run rules.
PISTON: web.AppKey[PistonClient | None] = web.AppKey("piston")
RUNTIMES: web.AppKey[RuntimeCatalog | None] = web.AppKey("runtimes")
RUNS = web.AppKey("runs", RunService)

# Per request: the caller's Clerk id, once authenticated (for the request log line).
USER_ID = web.RequestKey("user_id", str)
