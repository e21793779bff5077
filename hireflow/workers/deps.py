"""Everything a job needs, built once per worker process in `on_startup` and passed through arq's ctx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from hireflow.piston.client import PistonClient
from hireflow.queue import JobQueue
from hireflow.services.runs import RunService
from hireflow.services.sessions import SessionService
from hireflow.settings import Settings
from hireflow.store.mongo import Document
from hireflow.store.runs import RunRepo
from hireflow.store.sessions import SessionRepo
from hireflow.store.users import UserRepo
from hireflow.stream.gateway import StreamGateway
from hireflow.workers.locks import SessionLocks
from hireflow.workers.throttle import StreamThrottle


@dataclass
class WorkerDeps:
    settings: Settings
    mongo: AsyncMongoClient[Document]
    sessions: SessionRepo
    service: SessionService
    """The same session rules as the web process; jobs use it to announce a change they wrote."""
    users: UserRepo
    stream: StreamGateway | None
    """None when Stream is not configured (development): sessions are marked `disabled`."""
    locks: SessionLocks
    throttle: StreamThrottle
    queue: JobQueue
    warned_stream_disabled: bool = False
    # Code runs: the engine (None without PISTON_URL) and the run rules shared with the web process.
    piston: PistonClient | None = None
    runs: RunService | None = None
    run_repo: RunRepo | None = None


def deps(ctx: dict[str, Any]) -> WorkerDeps:
    found: WorkerDeps = ctx["deps"]
    return found
