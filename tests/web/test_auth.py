"""Clerk session-token verification and the caller look-up, through the real app."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest

from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.fakes.clerk import SigningKey


def unauthorized(code: str) -> dict[str, str]:
    """The frontend's one message; the code tells the cases apart."""
    return {"message": "Unauthorized - invalid token", "code": code}


async def assert_401(resp, code: str) -> None:
    assert resp.status == 401
    assert await resp.json() == unauthorized(code)


async def get_active(client, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get("/api/sessions/active", headers=headers, **kwargs)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_bearer_token(client, factory: Factory):
    user = await factory.user()
    resp = await get_active(client, user.token)
    assert resp.status == 200
    assert await resp.json() == {"sessions": []}


async def test_session_cookie(client, factory: Factory):
    user = await factory.user()
    resp = await client.get("/api/sessions/active", cookies={"__session": user.token})
    assert resp.status == 200


async def test_missing_token(client):
    await assert_401(await get_active(client), "token_missing")
    await assert_401(await client.get("/api/sessions/active", headers={"Authorization": "Bearer "}), "token_missing")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "mt_looks_like_a_machine_token", "Bearer"])
async def test_garbage_tokens(client, token):
    resp = await client.get("/api/sessions/active", headers={"Authorization": f"Bearer {token}"})
    await assert_401(resp, "token_invalid")


async def test_expired_token(client, factory: Factory, signing_key: SigningKey):
    user = await factory.user()
    token = signing_key.mint(user.doc["clerkId"], ttl_s=-60)
    await assert_401(await get_active(client, token), "token_expired")


async def test_remembered_token_that_expired_since(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    """A token verified once is remembered; its expiry is still checked on every later use."""
    import asyncio

    client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, clerk_clock_skew_s=0)))
    try:
        user = await factory.user()
        token = factory.token(user.doc["clerkId"], ttl_s=3)
        assert (await get_active(client, token)).status == 200
        expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
        await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.2)
        await assert_401(await get_active(client, token), "token_expired")
    finally:
        await client.close()


async def test_token_within_clock_skew_is_accepted(client, factory: Factory, signing_key: SigningKey):
    user = await factory.user()
    token = signing_key.mint(user.doc["clerkId"], ttl_s=-2, nbf_offset_s=2)
    assert (await get_active(client, token)).status == 200


async def test_not_yet_valid_token(client, factory: Factory, signing_key: SigningKey):
    user = await factory.user()
    token = signing_key.mint(user.doc["clerkId"], nbf_offset_s=60)
    assert (await get_active(client, token)).status == 401


async def test_token_signed_by_another_key(client, factory: Factory):
    user = await factory.user()
    token = SigningKey.generate().mint(user.doc["clerkId"])
    await assert_401(await get_active(client, token), "token_invalid")


async def test_alg_none(client, factory: Factory):
    user = await factory.user()
    now = int(time.time())
    token = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64({"sub": user.doc["clerkId"], "exp": now + 60, "nbf": now - 5, "azp": "http://localhost:5173"})
        + "."
    )
    assert (await get_active(client, token)).status == 401


async def test_hs256_signed_with_the_public_key(client, factory: Factory, signing_key: SigningKey):
    user = await factory.user()
    now = int(time.time())
    claims = {"sub": user.doc["clerkId"], "exp": now + 60, "nbf": now - 5, "azp": "http://localhost:5173"}
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64(claims)
    import hashlib
    import hmac

    sig = hmac.new(signing_key.public_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    assert (await get_active(client, token)).status == 401


async def test_wrong_azp(client, factory: Factory, signing_key: SigningKey):
    user = await factory.user()
    assert (await get_active(client, signing_key.mint(user.doc["clerkId"], azp="https://evil.example"))).status == 401
    assert (await get_active(client, signing_key.mint(user.doc["clerkId"], azp=None))).status == 401


async def test_token_without_sub(client, signing_key: SigningKey):
    token = jwt.encode(
        {"exp": int(time.time()) + 60, "azp": "http://localhost:5173"}, signing_key.private_pem, algorithm="RS256"
    )
    assert (await get_active(client, token)).status == 401


async def test_late_user_is_fetched_from_clerk_and_stored(client, factory: Factory, fake_clerk, mongo):
    clerk, _url = fake_clerk
    clerk_id, token = factory.clerk_only("late")
    resp = await get_active(client, token)
    assert resp.status == 200
    stored = await mongo.users.find_one({"clerkId": clerk_id})
    assert stored["email"] == f"{clerk_id}@example.com"
    assert stored["name"] == "Ada Lovelace"
    assert stored["profileImage"] == "https://img.clerk.test/a.png"
    assert clerk.user_fetches == 1
    assert (await get_active(client, token)).status == 200
    assert clerk.user_fetches == 1, "stored now: no second look-up"


async def test_concurrent_first_requests_of_a_late_user_store_one_document(client, factory: Factory, mongo):
    import asyncio

    clerk_id, token = factory.clerk_only("racer")
    responses = await asyncio.gather(*(get_active(client, token) for _ in range(10)))
    assert {r.status for r in responses} == {200}
    assert await mongo.users.count_documents({"clerkId": clerk_id}) == 1


async def test_user_unknown_to_db_and_clerk_is_401_user_unknown_on_every_route(client, factory: Factory):
    token = factory.token("user_nobody")
    for method, path in PROTECTED:
        resp = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        await assert_401(resp, "user_unknown")


async def test_clerk_user_without_email_is_a_clear_400(client, factory: Factory):
    _clerk_id, token = factory.clerk_only("noemail", email=None)
    resp = await get_active(client, token)
    assert resp.status == 400
    assert "no email" in (await resp.json())["message"]


async def test_clerk_outage_during_late_user_lookup_is_503(client, factory: Factory, fake_clerk):
    clerk, _url = fake_clerk
    _clerk_id, token = factory.clerk_only("late")
    clerk.fail_status = 500
    resp = await get_active(client, token)
    assert resp.status == 503
    assert (await resp.json())["message"] == "Service unavailable"


async def jwks_client(infra, db_name, fake_clerk, redis, mongo, **overrides):
    clerk, url = fake_clerk
    settings = make_settings(infra, db_name, clerk, url, clerk_jwt_key=None, **overrides)
    return await serve(create_app(settings))


async def test_jwks_verification_and_key_rotation(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    clerk, _url = fake_clerk
    client = await jwks_client(infra, db_name, fake_clerk, redis, mongo, clerk_jwks_unknown_kid_s=0.5)
    try:
        user = await factory.user()
        assert (await get_active(client, user.token)).status == 200
        assert clerk.jwks_fetches == 1
        assert (await get_active(client, factory.token(user.doc["clerkId"]))).status == 200
        assert clerk.jwks_fetches == 1, "keys are cached"

        rotated = SigningKey.generate()
        clerk.keys.append(rotated)
        await asyncio.sleep(0.6)
        assert (await get_active(client, rotated.mint(user.doc["clerkId"]))).status == 200
        assert clerk.jwks_fetches == 2, "an unknown kid re-fetches the key set once"

        stranger = SigningKey.generate()  # a kid Clerk does not have: 401 (its fetch bound: the next test)
        for _ in range(3):
            assert (await get_active(client, stranger.mint(user.doc["clerkId"]))).status == 401

        forged = SigningKey.generate().mint(user.doc["clerkId"], kid=rotated.kid)
        assert (await get_active(client, forged)).status == 401
    finally:
        await client.close()


async def test_forged_tokens_cannot_make_us_fetch_the_key_set(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory
):
    """Known kid + bad signature is 401 without a fetch; a new kid fetches at most once per 30 s."""
    clerk, _url = fake_clerk
    client = await jwks_client(infra, db_name, fake_clerk, redis, mongo)  # default bounds: 5 min / 30 s
    try:
        user = await factory.user()
        assert (await get_active(client, user.token)).status == 200
        assert clerk.jwks_fetches == 1
        real_kid = clerk.keys[0].kid
        forger = SigningKey.generate()
        forged = [forger.mint(user.doc["clerkId"], kid=real_kid) for _ in range(60)]
        random_kids = [forger.mint(user.doc["clerkId"], kid=f"ins_forged{i}") for i in range(60)]
        responses = await asyncio.gather(*(get_active(client, token) for token in forged + random_kids))
        assert {r.status for r in responses} == {401}
        assert clerk.jwks_fetches == 1, "no fetch for forged tokens, none for a new kid within 30 s"
        assert (await get_active(client, factory.token(user.doc["clerkId"]))).status == 200
    finally:
        await client.close()


async def test_jwks_with_a_wrong_secret_key_is_503_not_401(infra, db_name, fake_clerk, redis, mongo, factory: Factory):
    clerk, url = fake_clerk
    settings = make_settings(infra, db_name, clerk, url, clerk_jwt_key=None, clerk_secret_key="sk_wrong")
    client = await serve(create_app(settings))
    try:
        user = await factory.user()
        resp = await get_active(client, SigningKey.generate().mint(user.doc["clerkId"]))
        assert resp.status == 503
    finally:
        await client.close()


PROTECTED = [
    ("GET", "/api/chat/token"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions/active"),
    ("GET", "/api/sessions/my-recent"),
    ("GET", "/api/sessions/0123456789abcdef01234567"),
    ("POST", "/api/sessions/0123456789abcdef01234567/join"),
    ("POST", "/api/sessions/0123456789abcdef01234567/end"),
]


async def test_every_protected_route_requires_auth(client):
    for method, path in PROTECTED:
        await assert_401(await client.request(method, path), "token_missing")
