"""Every `/api/sessions` route through the real app: shapes, rules, messages, and races."""

from __future__ import annotations

import asyncio
import re

import pytest
from bson import ObjectId

from tests.conftest import Factory

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
USER_KEYS = {"_id", "name", "email", "profileImage", "clerkId"}
SESSION_KEYS = {
    "_id",
    "problem",
    "difficulty",
    "host",
    "participant",
    "status",
    "callId",
    "streamStatus",
    "createdAt",
    "updatedAt",
    "endedAt",
    "visibility",
}


async def create(client, user, problem="Two Sum", difficulty="easy"):
    resp = await client.post("/api/sessions", json={"problem": problem, "difficulty": difficulty}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["session"]


def public(user):
    d = user.doc
    return {
        "_id": str(d["_id"]),
        "name": d["name"],
        "email": d["email"],
        "profileImage": d["profileImage"],
        "clerkId": d["clerkId"],
    }


async def test_create_returns_the_session_with_host_populated(client, factory: Factory):
    host = await factory.user("host")
    resp = await client.post(
        "/api/sessions", json={"problem": "  Two Sum  ", "difficulty": "easy", "extra": 1}, headers=host.headers
    )
    assert resp.status == 201
    assert resp.content_type == "application/json"
    session = (await resp.json())["session"]
    assert set(session) == SESSION_KEYS
    assert re.fullmatch(r"[0-9a-f]{24}", session["_id"])
    assert session["problem"] == "Two Sum"
    assert session["difficulty"] == "easy"
    assert session["host"] == public(host)
    assert session["participant"] is None
    assert session["status"] == "active"
    assert session["streamStatus"] == "pending"
    assert re.fullmatch(r"session_[0-9a-f]{32}", session["callId"])
    assert ISO_MS.match(session["createdAt"]) and ISO_MS.match(session["updatedAt"])
    assert session["endedAt"] is None


async def test_call_ids_are_unique_and_random(client, factory: Factory):
    host = await factory.user("host")
    ids = {(await create(client, host))["callId"] for _ in range(5)}
    assert len(ids) == 5


async def test_create_stores_seed_field_names(client, factory: Factory, mongo):
    host = await factory.user("host")
    session = await create(client, host, "LRU Cache", "hard")
    doc = await mongo.sessions.find_one({"_id": ObjectId(session["_id"])})
    assert doc["host"] == host.doc["_id"] and doc["participant"] is None
    assert doc["callId"] == session["callId"] and doc["status"] == "active"
    assert doc["streamStatus"] == "pending"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Problem and difficulty are required"),
        ({"problem": "Two Sum"}, "Problem and difficulty are required"),
        ({"difficulty": "easy"}, "Problem and difficulty are required"),
        ({"problem": "", "difficulty": "easy"}, "Problem and difficulty are required"),
        ({"problem": "   ", "difficulty": "easy"}, "Problem and difficulty are required"),
        ({"problem": "Two Sum", "difficulty": ""}, "Problem and difficulty are required"),
        ({"problem": 42, "difficulty": "easy"}, "Problem must be a string"),
        ({"problem": "x" * 201, "difficulty": "easy"}, "Problem must be at most 200 characters"),
        ({"problem": "Two Sum", "difficulty": "extreme"}, "Difficulty must be one of: easy, medium, hard"),
        ({"problem": "Two Sum", "difficulty": ["easy"]}, "Difficulty must be one of: easy, medium, hard"),
        ([1, 2], "Request body must be a JSON object"),
        ("text", "Request body must be a JSON object"),
    ],
)
async def test_create_validation(client, factory: Factory, body, message):
    host = await factory.user("host")
    resp = await client.post("/api/sessions", json=body, headers=host.headers)
    assert resp.status == 400
    assert (await resp.json())["message"] == message


async def test_problem_of_exactly_200_characters_is_accepted(client, factory: Factory):
    host = await factory.user("host")
    assert (await create(client, host, "x" * 200))["problem"] == "x" * 200


async def test_malformed_json_is_400(client, factory: Factory):
    host = await factory.user("host")
    resp = await client.post(
        "/api/sessions", data=b'{"problem": ', headers={**host.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["message"] == "Malformed JSON body"


async def test_body_over_64_kib_is_413(client, factory: Factory):
    host = await factory.user("host")
    body = b'{"problem": "' + b"x" * (64 * 1024) + b'", "difficulty": "easy"}'
    resp = await client.post("/api/sessions", data=body, headers={**host.headers, "Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["message"] == "Request body too large"


async def test_chunked_body_over_64_kib_is_413(client, factory: Factory):
    host = await factory.user("host")

    async def chunks():
        for _ in range(80):
            yield b"x" * 1024

    headers = {**host.headers, "Content-Type": "application/json"}
    resp = await client.post("/api/sessions", data=chunks(), headers=headers)
    assert resp.status == 413


async def test_active_lists_latest_20_active_newest_first(client, factory: Factory):
    host = await factory.user("host")
    made = [await create(client, host, f"P{i}") for i in range(23)]
    ended = made[-1]
    resp = await client.post(f"/api/sessions/{ended['_id']}/end", headers=host.headers)
    assert resp.status == 200
    resp = await client.get("/api/sessions/active", headers=host.headers)
    assert resp.status == 200
    sessions = (await resp.json())["sessions"]
    assert [s["problem"] for s in sessions] == [f"P{i}" for i in range(21, 1, -1)]
    assert all(s["host"] == public(host) for s in sessions)


async def test_my_recent_lists_completed_as_host_or_participant(client, factory: Factory):
    alice, bob, carol = await factory.user("alice"), await factory.user("bob"), await factory.user("carol")
    hosted = await create(client, alice, "hosted")
    joined = await create(client, bob, "joined")
    other = await create(client, bob, "other")
    still_active = await create(client, alice, "active")
    assert (await client.post(f"/api/sessions/{joined['_id']}/join", headers=alice.headers)).status == 200
    assert (await client.post(f"/api/sessions/{other['_id']}/join", headers=carol.headers)).status == 200
    for session, host in ((hosted, alice), (joined, bob), (other, bob)):
        assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200

    resp = await client.get("/api/sessions/my-recent", headers=alice.headers)
    assert resp.status == 200
    sessions = (await resp.json())["sessions"]
    assert [s["problem"] for s in sessions] == ["joined", "hosted"]
    assert sessions[0]["participant"] == public(alice) and sessions[0]["host"] == public(bob)
    assert all(s["status"] == "completed" and ISO_MS.match(s["endedAt"]) for s in sessions)
    assert still_active["_id"] not in {s["_id"] for s in sessions}


async def test_my_recent_is_capped_at_20(client, factory: Factory):
    host = await factory.user("host")
    for i in range(22):
        session = await create(client, host, f"P{i}")
        assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200
    sessions = (await (await client.get("/api/sessions/my-recent", headers=host.headers)).json())["sessions"]
    assert [s["problem"] for s in sessions] == [f"P{i}" for i in range(21, 1, -1)]


async def test_get_by_id(client, factory: Factory):
    host, guest = await factory.user("host"), await factory.user("guest")
    session = await create(client, host)
    resp = await client.get(f"/api/sessions/{session['_id']}", headers=guest.headers)
    assert resp.status == 200
    host_without_email = {k: v for k, v in session["host"].items() if k != "email"}
    assert (await resp.json())["session"] == {**session, "host": host_without_email}
    resp = await client.get(f"/api/sessions/{session['_id']}", headers=host.headers)
    assert (await resp.json())["session"] == session


@pytest.mark.parametrize("bad_id", ["nope", "0" * 24, "zzzzzzzzzzzzzzzzzzzzzzzz", "1" * 25, "%20"])
async def test_unknown_or_malformed_id_is_404(client, factory: Factory, bad_id):
    user = await factory.user("user")
    for method, path in (("GET", ""), ("POST", "/join"), ("POST", "/end")):
        resp = await client.request(method, f"/api/sessions/{bad_id}{path}", headers=user.headers)
        assert resp.status == 404, (method, path)
        assert await resp.json() == {"message": "Session not found", "code": "not_found"}


async def test_join_rules(client, factory: Factory):
    host, guest, third = await factory.user("host"), await factory.user("guest"), await factory.user("third")
    session = await create(client, host)
    url = f"/api/sessions/{session['_id']}/join"

    resp = await client.post(url, headers=host.headers)
    assert resp.status == 400
    assert (await resp.json())["message"] == "Host cannot join their own session as participant"

    resp = await client.post(url, headers=guest.headers)
    assert resp.status == 200
    joined = (await resp.json())["session"]
    assert joined["participant"] == public(guest) and joined["host"] == public(host)
    assert joined["updatedAt"] >= session["updatedAt"]

    resp = await client.post(url, headers=guest.headers)
    assert resp.status == 200, "the same participant again is fine"
    assert (await resp.json())["session"]["participant"] == public(guest)

    resp = await client.post(url, headers=third.headers)
    assert resp.status == 409
    assert (await resp.json())["message"] == "Session is full"

    assert (await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)).status == 200
    resp = await client.post(url, headers=third.headers)
    assert resp.status == 400
    assert (await resp.json())["message"] == "Cannot join a completed session"


async def test_end_rules(client, factory: Factory):
    host, guest = await factory.user("host"), await factory.user("guest")
    session = await create(client, host)
    url = f"/api/sessions/{session['_id']}/end"

    resp = await client.post(url, headers=guest.headers)
    assert resp.status == 403
    assert (await resp.json())["message"] == "Only the host can end the session"

    resp = await client.post(url, headers=host.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["message"] == "Session ended successfully"
    assert body["session"]["status"] == "completed"
    assert ISO_MS.match(body["session"]["endedAt"])
    assert body["session"]["host"] == public(host)

    resp = await client.post(url, headers=host.headers)
    assert resp.status == 400
    assert (await resp.json())["message"] == "Session is already completed"


async def test_twenty_concurrent_joins_admit_exactly_one(client, factory: Factory):
    host = await factory.user("host")
    session = await create(client, host)
    guests = [await factory.user(f"g{i}") for i in range(20)]
    url = f"/api/sessions/{session['_id']}/join"
    responses = await asyncio.gather(*(client.post(url, headers=g.headers) for g in guests))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * 19
    winner = next(g for g, r in zip(guests, responses, strict=True) if r.status == 200)
    final = (await (await client.get(f"/api/sessions/{session['_id']}", headers=host.headers)).json())["session"]
    assert final["participant"] == public(winner)


async def test_ten_concurrent_ends_succeed_once(client, factory: Factory):
    host = await factory.user("host")
    session = await create(client, host)
    url = f"/api/sessions/{session['_id']}/end"
    responses = await asyncio.gather(*(client.post(url, headers=host.headers) for _ in range(10)))
    assert sorted(r.status for r in responses) == [200] + [400] * 9
    for r in responses:
        if r.status == 400:
            assert (await r.json())["message"] == "Session is already completed"


async def test_list_queries_use_indexes(client, mongo):
    from hireflow.store.sessions import SessionRepo

    plans = await SessionRepo(mongo).explain_queries(ObjectId())
    for name, plan in plans.items():
        assert "COLLSCAN" not in str(plan), (name, plan)
        assert "IXSCAN" in str(plan), (name, plan)


async def test_indexes_exist_and_are_unique_where_required(client, mongo):
    users = await mongo.users.index_information()
    sessions = await mongo.sessions.index_information()
    assert users["clerkId_unique"]["unique"] and users["email_unique"]["unique"]
    assert sessions["callId_unique"]["unique"]
