"""A fake Stream API for both SDKs: getstream (video, users under /api/v2) and stream-chat (channels).

It checks what Stream checks (the `api_key` query parameter and a server JWT, HS256 with the API
secret and no `user_id`, in `Authorization`), keeps state (users, calls, channels, members, deletions), refuses
members that are not users (as Stream does), and injects faults: status codes, 429s with rate-limit
headers, and delays.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from tests.fakes.faults import Fault, Faults


@dataclass
class FakeStream:
    api_key: str = "stream-key"
    api_secret: str = "stream-secret-" + "x" * 20
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_users: list[str] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_calls: list[str] = field(default_factory=list)
    deleted_channels: list[str] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)
    """How many times each call/channel cid was created (must stay 1)."""
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str]] = field(default_factory=list)
    request_times: list[tuple[float, str, str]] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)
    """Highest number of concurrent requests seen per call id (1 means never provisioned twice at once)."""

    def fail(self, method: str, path: str, **kwargs: Any) -> Fault:
        return self.faults.add(method, path, **kwargs)

    # --- plumbing -------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.query.get("api_key") != self.api_key:
            return self._error(401, 2, "api_key not found")
        if request.headers.get("stream-auth-type") != "jwt":
            return self._error(401, 5, "missing stream-auth-type")
        try:
            claims = jwt.decode(request.headers.get("Authorization", ""), self.api_secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return self._error(401, 5, "JWTAuth error: signature is not valid")
        if "user_id" in claims:  # a user token (stream-chat sends {"server": true}, getstream {})
            return self._error(403, 17, "server-side endpoint called with a user token")
        self.requests.append((request.method, request.path))
        self.request_times.append((time.monotonic(), request.method, request.path))
        call_id = request.match_info.get("id", "")
        self.in_flight[call_id] += 1
        self.max_in_flight[call_id] = max(self.max_in_flight[call_id], self.in_flight[call_id])
        try:
            fault = await self.faults.hit(request)
            if fault is not None:
                return self._error(fault.status, 99, "injected fault", fault.headers)
            return await handler(request)
        finally:
            self.in_flight[call_id] -= 1

    @staticmethod
    def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {
            "code": code,
            "message": message,
            "StatusCode": status,
            "duration": "0.01ms",
            "more_info": "",
            "details": [],
        }
        return web.json_response(body, status=status, headers=headers)

    def _missing_users(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.users]

    # --- users (getstream /api/v2/users, stream-chat /users) -------------------------------------

    async def upsert_users(self, request: web.Request) -> web.Response:
        body = await request.json()
        for user_id, user in body["users"].items():
            self.users[user_id] = {**self.users.get(user_id, {}), **user, "id": user_id}
        return web.json_response({"users": {u: self.users[u] for u in body["users"]}, "duration": "1ms"})

    async def delete_users(self, request: web.Request) -> web.Response:
        body = await request.json()
        for user_id in body["user_ids"]:
            if self.users.pop(user_id, None) is not None:
                self.deleted_users.append(user_id)
        return web.json_response({"task_id": "task_" + str(time.time_ns()), "duration": "1ms"})

    # --- video calls ----------------------------------------------------------------------------

    async def get_or_create_call(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        data = (await request.json()).get("data", {})
        members = [m["user_id"] for m in data.get("members", [])]
        missing = self._missing_users([data.get("created_by_id", ""), *members])
        if missing:
            return self._error(400, 4, f"users don't exist: {missing}")
        created = cid not in self.calls
        if created:
            self.created[cid] += 1
            self.calls[cid] = {
                "cid": cid,
                "created_by_id": data["created_by_id"],
                "custom": data.get("custom", {}),
                "members": [],
            }
        call = self.calls[cid]
        for member in members:
            if member not in call["members"]:
                call["members"].append(member)
        return web.json_response(
            {
                "call": {
                    "cid": cid,
                    "id": request.match_info["id"],
                    "type": request.match_info["type"],
                    "custom": call["custom"],
                },
                "members": [],
                "created": created,
                "own_capabilities": [],
                "duration": "1ms",
            }
        )

    async def update_call_members(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        if cid not in self.calls:
            return self._error(404, 16, f"call {cid} not found")
        members = [m["user_id"] for m in (await request.json()).get("update_members", [])]
        missing = self._missing_users(members)
        if missing:
            return self._error(400, 4, f"users don't exist: {missing}")
        for member in members:
            if member not in self.calls[cid]["members"]:
                self.calls[cid]["members"].append(member)
        return web.json_response({"members": [], "duration": "1ms"})

    async def delete_call(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        body = await request.json()
        if cid not in self.calls:
            return self._error(404, 16, f"call {cid} not found")
        if body.get("hard") is not True:
            return self._error(400, 4, "expected a hard delete")
        del self.calls[cid]
        self.deleted_calls.append(cid)
        return web.json_response({"call": {"cid": cid}, "duration": "1ms"})

    # --- chat channels --------------------------------------------------------------------------

    async def query_channel(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        data = (await request.json()).get("data", {})
        if cid not in self.channels:
            members = list(data.get("members", []))
            creator = data.get("created_by", {}).get("id", "")
            missing = self._missing_users([creator, *members])
            if missing:
                return self._error(
                    400, 4, f"The following users are specified in channel.members but don't exist: {missing}"
                )
            self.created[cid] += 1
            self.channels[cid] = {"cid": cid, "name": data.get("name"), "created_by": creator, "members": members}
        channel = self.channels[cid]
        return web.json_response(
            {
                "channel": {"cid": cid, "name": channel["name"]},
                "members": [{"user_id": m} for m in channel["members"]],
                "messages": [],
                "duration": "1ms",
            }
        )

    async def update_channel(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        if cid not in self.channels:
            return self._error(404, 16, f"channel {cid} not found")
        add = [m["user_id"] if isinstance(m, dict) else m for m in (await request.json()).get("add_members", [])]
        missing = self._missing_users(add)
        if missing:
            return self._error(400, 4, f"users don't exist: {missing}")
        for member in add:
            if member not in self.channels[cid]["members"]:
                self.channels[cid]["members"].append(member)
        return web.json_response({"channel": {"cid": cid}, "members": [], "duration": "1ms"})

    async def delete_channel(self, request: web.Request) -> web.Response:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        if cid not in self.channels:
            return self._error(404, 16, f"channel {cid} not found")
        if request.query.get("hard_delete") != "true":
            return self._error(400, 4, "expected a hard delete")
        del self.channels[cid]
        self.deleted_channels.append(cid)
        return web.json_response({"channel": {"cid": cid}, "duration": "1ms"})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        r = app.router
        r.add_post("/api/v2/users", self.upsert_users)
        r.add_post("/api/v2/users/delete", self.delete_users)
        r.add_post("/api/v2/video/call/{type}/{id}", self.get_or_create_call)
        r.add_post("/api/v2/video/call/{type}/{id}/members", self.update_call_members)
        r.add_post("/api/v2/video/call/{type}/{id}/delete", self.delete_call)
        r.add_post("/users", self.upsert_users)
        r.add_post("/channels/{type}/{id}/query", self.query_channel)
        r.add_post("/channels/{type}/{id}", self.update_channel)
        r.add_delete("/channels/{type}/{id}", self.delete_channel)
        return app
