"""Shared fixtures: a real MongoDB-wire server and a private Redis for the run, a fresh database and
an empty Redis per test, a fake Clerk over HTTP, and the real app on a real socket."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from hireflow import embedded
from hireflow.settings import Settings
from hireflow.store.mongo import Document
from hireflow.web.app import create_app
from hireflow.web.runner import Runner
from tests.fakes.clerk import FakeClerk, SigningKey, clerk_user
from tests.fakes.piston import FakePiston
from tests.fakes.stream import FakeStream

# Fixtures shared across folders: workers (in-process and real processes) and WebSocket clients.
pytest_plugins = ["tests.support.workers", "tests.support.ws", "tests.support.sentinel", "tests.support.node"]

ORIGIN = "http://localhost:5173"


@dataclass(frozen=True)
class Infra:
    mongo_port: int
    redis_port: int

    def mongo_url(self, db_name: str) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/{db_name}?directConnection=true"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """One SecantusDB and one Redis for the whole run, both ours to wipe."""
    with tempfile.TemporaryDirectory(prefix="hireflow-test-") as tmp:
        mongo_port, redis_port = embedded.free_port(), embedded.free_port()
        mongo = embedded.start_mongo(port=mongo_port, storage_path=":memory:")
        redis = embedded.start_redis(port=redis_port, directory=tmp)
        try:
            embedded.wait_for_port(mongo_port, mongo)
            embedded.wait_for_port(redis_port, redis)
            yield Infra(mongo_port, redis_port)
        finally:
            embedded.stop(mongo)
            embedded.stop(redis)


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
async def fake_clerk(signing_key: SigningKey) -> AsyncIterator[tuple[FakeClerk, str]]:
    clerk = FakeClerk(keys=[signing_key])
    server = TestServer(clerk.app())
    await server.start_server()
    yield clerk, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def fake_stream() -> AsyncIterator[tuple[FakeStream, str]]:
    stream = FakeStream()
    server = TestServer(stream.app())
    await server.start_server()
    yield stream, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def fake_piston() -> AsyncIterator[tuple[FakePiston, str]]:
    piston = FakePiston()
    server = TestServer(piston.app())
    await server.start_server()
    yield piston, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def db_name() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url, decode_responses=True)
    await client.flushall()  # our private server: nothing else lives there
    yield client
    await client.aclose()


@pytest.fixture
async def mongo(infra: Infra, db_name: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongo_url(db_name), tz_aware=True)
    yield client[db_name]
    await client.drop_database(db_name)
    await client.close()


def make_settings(infra: Infra, db_name: str, clerk: FakeClerk, clerk_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "node_env": "test",
        "db_url": infra.mongo_url(db_name),
        "redis_url": infra.redis_url,
        "client_url": ORIGIN,
        "clerk_jwt_key": clerk.keys[0].public_pem,
        "clerk_secret_key": clerk.secret_key,
        "clerk_api_url": clerk_url,
        "stream_api_key": "stream-key",
        "stream_api_secret": "stream-secret-" + "x" * 20,
        "clerk_timeout_s": 2.0,
        # Tests that start an app against a dead Redis on purpose should not wait the default 120 s.
        "startup_timeout_s": 2.0,
        # Tests act as one user many times over; tests/web/test_quotas.py checks the real limits.
        "quota_active_sessions": 1000,
        "quota_creates": "1000/minute",
        "quota_joins": "1000/minute",
        "quota_chat_tokens": "1000/minute",
        "quota_writes": "1000/minute",
        "quota_ws_per_user": 10_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


FAST_WORKER = {
    "stream_timeout_s": 1.0,
    "job_timeout_s": 4.0,
    "worker_poll_delay_s": 0.05,
    "reconcile_interval_s": 1,
    "reconcile_after_s": 1.0,
    "worker_metrics_port": None,
}


@pytest.fixture
def settings(
    infra: Infra, db_name: str, fake_clerk: tuple[FakeClerk, str], fake_stream: tuple[FakeStream, str]
) -> Settings:
    """Everything real or faked locally: Stream points at the fake, worker timings are short."""
    stream, stream_url = fake_stream
    return make_settings(
        infra,
        db_name,
        *fake_clerk,
        stream_api_key=stream.api_key,
        stream_api_secret=stream.api_secret,
        stream_chat_url=stream_url,
        stream_base_url=stream_url,
        **FAST_WORKER,
    )


class AppServer(TestServer):
    """The app behind the runner production uses (hireflow/web/runner.py: JSON for protocol errors too)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return Runner(self.app, **kwargs)


@pytest.fixture
def piston_settings(settings: Settings, fake_piston: tuple[FakePiston, str]) -> Settings:
    """`settings` with code runs on the Piston fake (short timeouts: 1 s per run, 3 s per engine call)."""
    return settings.model_copy(
        update={"piston_url": fake_piston[1], "piston_timeout_s": 3.0, "run_run_timeout_ms": 1000}
    )


async def serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    client: TestClient[web.Request, web.Application] = TestClient(AppServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(
    settings: Settings, redis: Redis, mongo: Any
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real app over a real socket, on a fresh database and an empty Redis."""
    test_client = await serve(create_app(settings))
    yield test_client
    await test_client.close()


@dataclass
class User:
    doc: Document
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def id(self) -> str:
        return str(self.doc["_id"])


class Factory:
    """Makes users (stored, with a valid token) and Clerk-only users."""

    def __init__(self, db: Any, key: SigningKey, clerk: FakeClerk) -> None:
        self._db, self._key, self._clerk = db, key, clerk

    async def user(self, name: str = "alice") -> User:
        clerk_id = f"user_{name}_{uuid.uuid4().hex[:8]}"
        doc = {
            "clerkId": clerk_id,
            "name": name.title(),
            "email": f"{clerk_id}@example.com",
            "profileImage": f"https://img.test/{name}.png",
        }
        result = await self._db.users.insert_one(doc)
        doc["_id"] = result.inserted_id
        return User(doc=doc, token=self._key.mint(clerk_id))

    def clerk_only(self, name: str = "late", *, email: str | None = "") -> tuple[str, str]:
        """A user Clerk knows but the DB does not: (clerk id, token)."""
        clerk_id = f"user_{name}_{uuid.uuid4().hex[:8]}"
        self._clerk.users[clerk_id] = clerk_user(clerk_id, email=f"{clerk_id}@example.com" if email == "" else email)
        return clerk_id, self._key.mint(clerk_id)

    def token(self, clerk_id: str, **kwargs: Any) -> str:
        return self._key.mint(clerk_id, **kwargs)


@pytest.fixture
def factory(mongo: Any, signing_key: SigningKey, fake_clerk: tuple[FakeClerk, str]) -> Factory:
    return Factory(mongo, signing_key, fake_clerk[0])
