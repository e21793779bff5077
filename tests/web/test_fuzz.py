"""Property-based: whatever a client sends to the session routes, the answer is never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Factory

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "problem": json_values | st.text(max_size=250),
            "difficulty": st.sampled_from(["easy", "medium", "hard", "EASY", ""]) | json_values,
        },
    ),
    json_values,
).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)
ids = st.text(max_size=40) | st.from_regex(r"[0-9a-f]{24}", fullmatch=True)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(body=bodies)
async def test_create_never_5xx(client, factory: Factory, body):
    user = await factory.user("fuzz")
    resp = await client.post("/api/sessions", data=body, headers={**user.headers, "Content-Type": "application/json"})
    assert resp.status in (201, 400), (body, resp.status, await resp.text())
    if resp.status == 400:
        assert "message" in await resp.json()


@FUZZ
@given(session_id=ids, action=st.sampled_from(["", "/join", "/end"]))
async def test_session_ids_never_5xx(client, factory: Factory, session_id, action):
    from urllib.parse import quote

    user = await factory.user("fuzz")
    method = "GET" if action == "" else "POST"
    path = f"/api/sessions/{quote(session_id, safe='')}{action}"
    resp = await client.request(method, path, headers=user.headers)
    assert resp.status < 500, (session_id, resp.status)
    if resp.status != 200:
        assert "message" in await resp.json()


@FUZZ
@given(
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
    | st.from_regex(r"[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,80}\.[A-Za-z0-9_-]{0,40}", fullmatch=True)
)
async def test_tokens_never_5xx(client, token):
    resp = await client.get("/api/sessions/active", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


ENCODED_BYTES = st.lists(st.integers(0, 255), max_size=12).map(lambda bs: "".join(f"%{b:02x}" for b in bs))
path_tails = st.lists(ENCODED_BYTES | st.from_regex(r"[a-z0-9.]{0,8}", fullmatch=True), min_size=1, max_size=4).map(
    "/".join
)
route_prefixes = st.sampled_from(
    ["/", "/api/sessions/", "/api/sessions/0123456789abcdef01234567/", "/api/", "/assets/", "/health/"]
)


@FUZZ
@given(prefix=route_prefixes, tail=path_tails, method=st.sampled_from(["GET", "POST"]))
async def test_any_bytes_in_a_path_never_5xx(client, factory: Factory, prefix, tail, method):
    from yarl import URL

    user = await factory.user("fuzz")
    path = prefix + tail
    resp = await client.request(method, URL(path, encoded=True), headers=user.headers)
    assert resp.status < 500, (path, resp.status)
    if any(f"%{b:02x}" in path for b in [*range(0x20), 0x7F]):
        assert resp.status == 404, (path, resp.status)
    if resp.status >= 400:
        assert "message" in await resp.json()


@FUZZ
@given(
    encoding=st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "x-unknown", "gzip, deflate"]),
    body=st.binary(max_size=200),
    path=st.sampled_from(["/api/sessions", "/api/webhooks/clerk", "/api/sessions/0123456789abcdef01234567/join"]),
)
async def test_any_content_encoding_never_5xx(client, factory: Factory, encoding, body, path):
    user = await factory.user("fuzz")
    headers = {**user.headers, "Content-Type": "application/json", "Content-Encoding": encoding}
    resp = await client.post(path, data=body, headers=headers)
    if path == "/api/webhooks/clerk" and resp.status == 503:
        return  # CLERK_WEBHOOK_SECRET is not set in this app: answered before the body is read
    assert resp.status < 500, (encoding, body, resp.status)
