"""Privacy: emails for the two members only, completed sessions for their members only, and
invite-only (private) sessions: absent from the lobby, readable and joinable with their code only."""

from __future__ import annotations

from tests.conftest import Factory
from tests.support.ws import WsFactory

NOT_FOUND = {"message": "Session not found", "code": "not_found"}


async def create(client, user, **extra):
    resp = await client.post(
        "/api/sessions", json={"problem": "P", "difficulty": "easy", **extra}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["session"]


async def get(client, user, sid, **query):
    return await client.get(f"/api/sessions/{sid}", headers=user.headers, params=query)


async def test_emails_only_between_the_two_members(client, factory: Factory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    session = await create(client, host)
    assert "email" in session["host"]
    listed = (await (await client.get("/api/sessions/active", headers=stranger.headers)).json())["sessions"]
    assert set(listed[0]["host"]) == {"_id", "name", "profileImage", "clerkId"}
    joined = (await (await client.post(f"/api/sessions/{session['_id']}/join", headers=guest.headers)).json())[
        "session"
    ]
    assert joined["host"]["email"] == host.doc["email"] and joined["participant"]["email"] == guest.doc["email"]
    seen = (await (await get(client, stranger, session["_id"])).json())["session"]
    assert "email" not in seen["host"] and "email" not in seen["participant"]
    assert seen["host"]["clerkId"] == host.doc["clerkId"] and seen["participant"]["clerkId"] == guest.doc["clerkId"]
    for member in (host, guest):
        seen = (await (await get(client, member, session["_id"])).json())["session"]
        assert seen["host"]["email"] == host.doc["email"] and seen["participant"]["email"] == guest.doc["email"]


async def test_completed_sessions_are_for_their_members_only(client, factory: Factory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    session = await create(client, host)
    await client.post(f"/api/sessions/{session['_id']}/join", headers=guest.headers)
    await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)
    resp = await get(client, stranger, session["_id"])
    assert resp.status == 404 and await resp.json() == NOT_FOUND
    for member in (host, guest):
        assert (await get(client, member, session["_id"])).status == 200


async def test_private_sessions_need_their_invite_code(client, factory: Factory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    private = await create(client, host, visibility="private")
    code = private["inviteCode"]
    assert private["visibility"] == "private" and len(code) >= 20
    public = await create(client, host)
    assert "inviteCode" not in public and public["visibility"] == "public"
    for user in (host, stranger):
        listed = (await (await client.get("/api/sessions/active", headers=user.headers)).json())["sessions"]
        assert [s["_id"] for s in listed] == [public["_id"]], "never in the lobby"

    for query in ({}, {"inviteCode": "wrong"}, {"inviteCode": code[:-1]}):
        resp = await get(client, stranger, private["_id"], **query)
        assert resp.status == 404 and await resp.json() == NOT_FOUND, query
    seen = (await (await get(client, stranger, private["_id"], inviteCode=code)).json())["session"]
    assert "inviteCode" not in seen and "email" not in seen["host"]
    assert "inviteCode" in (await (await get(client, host, private["_id"])).json())["session"]

    join = f"/api/sessions/{private['_id']}/join"
    for body in (None, {"inviteCode": "wrong"}):
        resp = await client.post(join, json=body, headers=stranger.headers)
        assert resp.status == 404 and await resp.json() == NOT_FOUND
        resp = await client.post(f"/api/sessions/{private['_id']}/end", headers=stranger.headers)
        assert resp.status == 404 and await resp.json() == NOT_FOUND
    resp = await client.post(join, json={"inviteCode": code}, headers=guest.headers)
    assert resp.status == 200
    joined = (await resp.json())["session"]
    assert joined["participant"]["clerkId"] == guest.doc["clerkId"] and "inviteCode" not in joined
    assert (await get(client, guest, private["_id"])).status == 200, "a member needs no code"


async def test_the_host_rotates_the_invite_code(client, factory: Factory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    private = await create(client, host, visibility="private")
    old = private["inviteCode"]
    assert (await get(client, stranger, private["_id"], inviteCode=old)).status == 200  # cached under the old code
    url = f"/api/sessions/{private['_id']}/invite-code"
    resp = await client.post(url, headers=stranger.headers)
    assert resp.status == 404 and await resp.json() == NOT_FOUND
    resp = await client.post(url, headers=host.headers)
    assert resp.status == 200
    new = (await resp.json())["session"]["inviteCode"]
    assert new != old
    assert (await get(client, stranger, private["_id"], inviteCode=old)).status == 404
    assert (await get(client, stranger, private["_id"], inviteCode=new)).status == 200
    resp = await client.post(f"/api/sessions/{private['_id']}/join", json={"inviteCode": old}, headers=guest.headers)
    assert resp.status == 404
    resp = await client.post(f"/api/sessions/{private['_id']}/join", json={"inviteCode": new}, headers=guest.headers)
    assert resp.status == 200
    resp = await client.post(url, headers=guest.headers)
    assert resp.status == 403 and (await resp.json())["message"] == "Only the host can rotate the invite code"
    public = await create(client, host)
    resp = await client.post(f"/api/sessions/{public['_id']}/invite-code", headers=host.headers)
    assert resp.status == 400 and (await resp.json())["message"] == "Session is not private"


async def test_bad_visibility_is_400(client, factory: Factory):
    host = await factory.user("host")
    for value in ("secret", 1, ["private"], None):
        resp = await client.post(
            "/api/sessions", json={"problem": "P", "difficulty": "easy", "visibility": value}, headers=host.headers
        )
        assert resp.status == 400 and (await resp.json())["message"] == "Visibility must be one of: public, private"


async def test_websocket_topics_follow_the_same_rules(client, factory: Factory, ws_client: WsFactory):
    host, guest, stranger = await factory.user("host"), await factory.user("guest"), await factory.user("stranger")
    ws = await ws_client(client, stranger.token)
    lobby = await ws.subscribe("lobby")
    private = await create(client, host, visibility="private")
    public = await create(client, host)
    event = await ws.recv_type("event")
    assert event["session"]["_id"] == public["_id"], "private sessions are never on the lobby topic"
    assert "email" not in event["session"]["host"] and lobby["sessions"] == []

    await ws.send({"type": "subscribe", "topic": f"session:{private['_id']}"})
    assert await ws.recv_type("error") == {"type": "error", **NOT_FOUND}
    await ws.send({"type": "subscribe", "topic": f"session:{private['_id']}", "inviteCode": "nope"})
    assert (await ws.recv_type("error"))["code"] == "not_found"
    snapshot = await ws.subscribe(f"session:{private['_id']}", inviteCode=private["inviteCode"])
    assert snapshot["session"]["_id"] == private["_id"] and "inviteCode" not in snapshot["session"]
    assert "email" not in snapshot["session"]["host"]

    await client.post(f"/api/sessions/{private['_id']}/join", json=private, headers=guest.headers)
    joined = await ws.recv_type("event")
    assert joined["event"] == "session.updated" and "email" not in joined["session"]["participant"]
    assert "inviteCode" not in joined["session"]

    await client.post(f"/api/sessions/{public['_id']}/end", headers=host.headers)
    await ws.send({"type": "subscribe", "topic": f"session:{public['_id']}"})
    assert (await ws.recv_type("error"))["code"] == "not_found", "completed: members only"
    member = await ws_client(client, host.token)
    assert (await member.subscribe(f"session:{public['_id']}"))["session"]["status"] == "completed"
