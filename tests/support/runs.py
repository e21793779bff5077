"""Helpers for code-run tests: a session with both people in it, posting runs, waiting for their end."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from tests.conftest import Factory, User
from tests.support.workers import eventually


async def open_session(client: Any, factory: Factory) -> tuple[str, User, User]:
    """A session hosted by one new user and joined by another: (id, host, guest)."""
    host, guest = await factory.user("host"), await factory.user("guest")
    resp = await client.post("/api/sessions", json={"problem": "Two Sum", "difficulty": "easy"}, headers=host.headers)
    assert resp.status == 201, await resp.text()
    session_id = (await resp.json())["session"]["_id"]
    resp = await client.post(f"/api/sessions/{session_id}/join", headers=guest.headers)
    assert resp.status == 200, await resp.text()
    return session_id, host, guest


async def post_run(client: Any, session_id: str, user: User, code: str, **extra: Any) -> dict[str, Any]:
    body = {"language": "python", "code": code, **extra}
    resp = await client.post(f"/api/sessions/{session_id}/runs", json=body, headers=user.headers)
    assert resp.status == 202, await resp.text()
    run: dict[str, Any] = (await resp.json())["run"]
    assert run["status"] == "queued"
    return run


async def finished(mongo: Any, run_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """The run's document once it has a final status."""

    async def check() -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await mongo.runs.find_one({"_id": ObjectId(run_id)})
        if doc is not None and doc["status"] not in ("queued", "running"):
            return doc
        return None

    result: dict[str, Any] = await eventually(check, timeout_s=timeout_s)
    return result
