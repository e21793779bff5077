"""Clerk user sync through `/api/inngest` (signed as Inngest signs) and `/api/webhooks/clerk` (Svix)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from inngest._internal import net
from svix.webhooks import Webhook

from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.fakes.clerk import clerk_user
from tests.support.workers import eventually
from tests.support.ws import WsFactory

SIGNING_KEY = "signkey-test-" + "ab" * 32
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def sync_client(settings, redis, mongo):
    app_client = await serve(
        create_app(
            settings.model_copy(
                update={
                    "inngest_signing_key": __import__("pydantic").SecretStr(SIGNING_KEY),
                    "clerk_webhook_secret": __import__("pydantic").SecretStr(WEBHOOK_SECRET),
                }
            )
        )
    )
    yield app_client
    await app_client.close()


def inngest_body(event_name: str, data: dict) -> bytes:
    return json.dumps(
        {
            "ctx": {
                "attempt": 0,
                "disable_immediate_execution": False,
                "run_id": "run_" + uuid.uuid4().hex,
                "stack": {"stack": []},
            },
            "event": {"name": event_name, "data": data, "id": uuid.uuid4().hex, "ts": int(time.time() * 1000)},
            "events": [{"name": event_name, "data": data, "id": uuid.uuid4().hex, "ts": int(time.time() * 1000)}],
            "steps": {},
            "use_api": False,
        }
    ).encode()


async def run_function(client, fn_id: str, event_name: str, data: dict, *, key: str | None = SIGNING_KEY):
    body = inngest_body(event_name, data)
    headers = {"Content-Type": "application/json", "X-Inngest-Server-Kind": "cloud"}
    if key is not None:
        headers["X-Inngest-Signature"] = net.sign_request(body, key)
    return await client.post(f"/api/inngest?fnId=hireflow-{fn_id}&stepId=step", data=body, headers=headers)


def svix_headers(body: bytes, *, secret: str = WEBHOOK_SECRET, at: datetime | None = None) -> dict[str, str]:
    msg_id, timestamp = "msg_" + uuid.uuid4().hex, at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, timestamp, body.decode())
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(timestamp.timestamp())),
        "svix-signature": signature,
        "Content-Type": "application/json",
    }


async def webhook(client, event_type: str, data: dict, **kwargs):
    body = json.dumps({"type": event_type, "object": "event", "data": data}).encode()
    return await client.post("/api/webhooks/clerk", data=body, headers=svix_headers(body, **kwargs))


# --- Inngest ----------------------------------------------------------------------------------------


async def test_inngest_sync_update_delete_functions(sync_client, mongo):
    clerk_id = "user_" + uuid.uuid4().hex[:10]
    created = clerk_user(clerk_id, email="ada@example.com", updated_at_ms=1000)
    resp = await run_function(sync_client, "sync-user", "clerk/user.created", created)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "created"
    user = await mongo.users.find_one({"clerkId": clerk_id})
    assert (user["name"], user["email"], user["profileImage"]) == (
        "Ada Lovelace",
        "ada@example.com",
        "https://img.clerk.test/a.png",
    )

    updated = clerk_user(clerk_id, email="ada@example.com", first="Augusta", updated_at_ms=2000)
    resp = await run_function(sync_client, "update-user", "clerk/user.updated", updated)
    assert (await resp.json())["status"] == "updated"
    assert (await mongo.users.find_one({"clerkId": clerk_id}))["name"] == "Augusta Lovelace"

    resp = await run_function(
        sync_client, "delete-user-from-db", "clerk/user.deleted", {"id": clerk_id, "deleted": True, "object": "user"}
    )
    assert (await resp.json())["status"] == "deleted"
    assert await mongo.users.find_one({"clerkId": clerk_id}) is None


async def test_inngest_rejects_unsigned_and_badly_signed_requests(sync_client, mongo):
    data = clerk_user("user_x", email="x@example.com")
    for key in (None, "signkey-test-" + "cd" * 32):
        resp = await run_function(sync_client, "sync-user", "clerk/user.created", data, key=key)
        assert resp.status in (401, 500) and resp.status != 200, resp.status
        assert await mongo.users.find_one({"clerkId": "user_x"}) is None


async def test_inngest_introspection_needs_a_signature(sync_client):
    assert (await sync_client.get("/api/inngest")).status == 401
    signed = {"X-Inngest-Signature": net.sign_request(b"", SIGNING_KEY), "X-Inngest-Server-Kind": "cloud"}
    resp = await sync_client.get("/api/inngest", headers=signed)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["function_count"] == 3
    assert body["framework"] == "aiohttp"


async def test_inngest_without_signing_key_outside_dev_mode_refuses(client):
    resp = await client.post("/api/inngest?fnId=hireflow-sync-user&stepId=step", data=b"{}")
    assert resp.status == 401
    assert "INNGEST_SIGNING_KEY" in (await resp.json())["message"]


async def test_inngest_dev_mode_accepts_unsigned(infra, db_name, fake_clerk, redis, mongo):
    app_client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, inngest_dev="1")))
    try:
        data = clerk_user("user_dev1", email="dev1@example.com")
        resp = await run_function(app_client, "sync-user", "clerk/user.created", data, key=None)
        assert resp.status == 200, await resp.text()
        assert await mongo.users.find_one({"clerkId": "user_dev1"}) is not None
    finally:
        await app_client.close()


# --- Svix webhooks ----------------------------------------------------------------------------------


async def test_webhook_applies_events(sync_client, mongo):
    data = clerk_user("user_wh", email="wh@example.com", updated_at_ms=10)
    resp = await webhook(sync_client, "user.created", data)
    assert resp.status == 200 and (await resp.json())["status"] == "created"
    assert (await mongo.users.find_one({"clerkId": "user_wh"}))["email"] == "wh@example.com"


async def test_webhook_rejects_bad_signatures(sync_client, mongo):
    data = clerk_user("user_bad", email="bad@example.com")
    body = json.dumps({"type": "user.created", "data": data}).encode()
    wrong = await sync_client.post(
        "/api/webhooks/clerk", data=body, headers=svix_headers(body, secret="whsec_" + "A" * 32)
    )
    tampered_headers = svix_headers(body)
    tampered = await sync_client.post(
        "/api/webhooks/clerk", data=body.replace(b"bad@", b"evil@"), headers=tampered_headers
    )
    old = await sync_client.post(
        "/api/webhooks/clerk", data=body, headers=svix_headers(body, at=datetime.now(UTC) - timedelta(minutes=10))
    )
    unsigned = await sync_client.post("/api/webhooks/clerk", data=body)
    for resp in (wrong, tampered, old, unsigned):
        assert resp.status == 401
        assert (await resp.json())["message"] == "Invalid webhook signature"
    assert await mongo.users.find_one({"clerkId": "user_bad"}) is None


async def test_webhook_with_bytes_that_are_not_utf8_is_400(sync_client):
    body = b'{"type": "user.created", "data": {"id": "\xff\xfe"}}'
    headers = svix_headers(body.decode(errors="replace").encode())  # Svix signs text: these bytes are none
    resp = await sync_client.post("/api/webhooks/clerk", data=body, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["message"] == "Malformed JSON body"


async def test_webhook_without_a_secret_is_503(client):
    resp = await client.post("/api/webhooks/clerk", data=b"{}")
    assert resp.status == 503


async def test_duplicate_and_out_of_order_delivery(sync_client, mongo):
    clerk_id = "user_ooo"
    old = clerk_user(clerk_id, email="ooo@example.com", first="Old", updated_at_ms=100)
    new = clerk_user(clerk_id, email="ooo@example.com", first="New", updated_at_ms=200)

    assert (await (await webhook(sync_client, "user.updated", new)).json())["status"] == "created"
    assert (await (await webhook(sync_client, "user.created", old)).json())["status"] == "stale"
    assert (await (await webhook(sync_client, "user.updated", new)).json())["status"] == "unchanged"
    assert (await mongo.users.find_one({"clerkId": clerk_id}))["name"] == "New Lovelace"
    assert await mongo.users.count_documents({"clerkId": clerk_id}) == 1

    assert (await (await webhook(sync_client, "user.deleted", {"id": clerk_id, "deleted": True})).json())[
        "status"
    ] == "deleted"
    assert (await (await webhook(sync_client, "user.deleted", {"id": clerk_id, "deleted": True})).json())[
        "status"
    ] == "already-deleted"
    newer = clerk_user(clerk_id, email="ooo@example.com", first="Zombie", updated_at_ms=300)
    assert (await (await webhook(sync_client, "user.updated", newer)).json())["status"] == "deleted-earlier"
    assert await mongo.users.find_one({"clerkId": clerk_id}) is None


async def test_missing_fields_are_a_clear_error_not_a_crash(sync_client, mongo):
    no_email = clerk_user("user_noemail", email=None)
    resp = await webhook(sync_client, "user.created", no_email)
    assert resp.status == 200
    assert (await resp.json()) == {"status": "error", "error": "Clerk user user_noemail has no email address"}
    resp = await run_function(sync_client, "sync-user", "clerk/user.created", {"first_name": "nobody"})
    assert resp.status == 200
    assert (await resp.json())["status"] == "error"
    resp = await webhook(sync_client, "user.deleted", {})
    assert (await resp.json())["status"] == "error"


async def test_delete_ends_hosted_sessions_disconnects_and_cleans_stream(
    sync_client, factory: Factory, mongo, fake_stream, worker, ws_client: WsFactory
):
    stream, _ = fake_stream
    host = await factory.user("leaver")
    clerk_id = host.doc["clerkId"]
    await worker()
    resp = await sync_client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
    session = (await resp.json())["session"]

    async def provisioned():
        return f"default:{session['callId']}" in stream.calls

    await eventually(provisioned)
    ws = await ws_client(sync_client, host.token)
    resp = await webhook(sync_client, "user.deleted", {"id": clerk_id, "deleted": True})
    assert (await resp.json()) == {"status": "deleted", "clerkId": clerk_id, "sessionsEnded": 1}
    assert await ws.closed(timeout_s=2) == 4001
    doc = await mongo.sessions.find_one({"_id": __import__("bson").ObjectId(session["_id"])})
    assert doc["status"] == "completed"

    async def torn_down():
        return f"default:{session['callId']}" not in stream.calls and clerk_id in stream.deleted_users

    await eventually(torn_down)
    resp = await sync_client.get("/api/sessions/active", headers=host.headers)
    assert resp.status == 401, "a deleted user's token no longer finds a user"
    assert (await resp.json())["code"] == "user_unknown"


async def test_created_user_is_upserted_to_stream(sync_client, fake_stream, worker):
    stream, _ = fake_stream
    await worker()
    data = clerk_user("user_streamed", email="s@example.com", updated_at_ms=5)
    assert (await (await webhook(sync_client, "user.created", data)).json())["status"] == "created"

    async def upserted():
        return stream.users.get("user_streamed", {}).get("name") == "Ada Lovelace"

    await eventually(upserted)
