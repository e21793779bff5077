"""`GET /api/chat/token`: a Stream user token for the caller, signed with the API secret."""

from __future__ import annotations

import time

import jwt

from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve


async def test_chat_token_shape_and_claims(client, factory: Factory, settings):
    user = await factory.user("alice")
    resp = await client.get("/api/chat/token", headers=user.headers)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"token", "userId", "userName", "userImage"}
    assert body["userId"] == user.doc["clerkId"]
    assert body["userName"] == user.doc["name"]
    assert body["userImage"] == user.doc["profileImage"]
    claims = jwt.decode(body["token"], settings.stream_api_secret.get_secret_value(), algorithms=["HS256"])
    assert claims["user_id"] == user.doc["clerkId"]
    assert abs(claims["exp"] - (time.time() + 24 * 3600)) < 60


async def test_chat_token_ttl_is_configurable(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    settings = make_settings(infra, db_name, *fake_clerk, chat_token_ttl_s=600)
    client = await serve(create_app(settings))
    try:
        user = await factory.user()
        body = await (await client.get("/api/chat/token", headers=user.headers)).json()
        claims = jwt.decode(body["token"], settings.stream_api_secret.get_secret_value(), algorithms=["HS256"])
        assert abs(claims["exp"] - (time.time() + 600)) < 60
    finally:
        await client.close()


async def test_chat_token_without_stream_configured_is_503(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    settings = make_settings(infra, db_name, *fake_clerk, stream_api_key=None, stream_api_secret=None)
    client = await serve(create_app(settings))
    try:
        user = await factory.user()
        resp = await client.get("/api/chat/token", headers=user.headers)
        assert resp.status == 503
        assert (await resp.json())["message"] == "Chat is not configured"
    finally:
        await client.close()
