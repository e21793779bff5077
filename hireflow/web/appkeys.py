"""Typed keys for everything the application holds; each is set by one cleanup context in app.py."""

from __future__ import annotations

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
from hireflow.pad.rooms import Pads
from hireflow.queue import JobQueue
from hireflow.realtime.hub import Hub
from hireflow.services.sessions import SessionService
from hireflow.services.user_sync import UserSync
from hireflow.services.users import UserDirectory
from hireflow.settings import Settings
from hireflow.store.mongo import Document

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
PADS = web.AppKey("pads", Pads)
CHAT: web.AppKey[StreamChatAsync | None] = web.AppKey("chat")

# Per request: the caller's Clerk id, once authenticated (for the request log line).
USER_ID = web.RequestKey("user_id", str)
