"""Bad bytes, CSRF, slow clients and production lock-downs, all through real sockets."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from hireflow.web.app import create_app, server_options
from tests.conftest import ORIGIN, Factory, make_settings, serve
from tests.web.test_production import ROOT, clean_env

NEW = b'{"problem": "P", "difficulty": "easy"}'


@pytest.mark.parametrize(
    "path", ["/api/sessions", "/api/webhooks/clerk", "/api/sessions/0123456789abcdef01234567/join"]
)
async def test_a_body_not_in_its_content_encoding_is_400(infra, db_name, fake_clerk, redis, mongo, factory, path):
    settings = make_settings(infra, db_name, *fake_clerk, clerk_webhook_secret="whsec_" + "A" * 32)
    client = await serve(create_app(settings))
    try:
        await _bad_gzip(client, factory, path)
    finally:
        await client.close()


async def _bad_gzip(client, factory: Factory, path):
    user = await factory.user("user")
    headers = {**user.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await client.post(path, data=b"this is not gzip", headers=headers)
    assert resp.status == 400
    assert (await resp.json())["code"] == "bad_request"
    resp = await client.post(path, data=gzip.compress(NEW), headers=headers)
    assert resp.status < 500


async def test_unsupported_content_encodings_are_400(client, factory: Factory):
    user = await factory.user("user")
    for encoding in ("br", "zstd", "deflate"):
        headers = {**user.headers, "Content-Type": "application/json", "Content-Encoding": encoding}
        resp = await client.post("/api/sessions", data=b"garbage", headers=headers)
        assert resp.status == 400, encoding
        assert (await resp.json())["code"] == "bad_request", encoding  # JSON, through the app's runner


@pytest.mark.parametrize("path", ["/%00", "/api/sessions/%00", "/api/sessions/abc%00def/join", "/health%0a", "/%7f"])
async def test_control_bytes_in_a_path_are_404(client, factory: Factory, path):
    user = await factory.user("user")
    for method in ("GET", "POST"):
        resp = await client.request(method, URL(path, encoded=True), headers=user.headers)
        assert resp.status == 404, (method, path)
        assert (await resp.json())["message"] in ("Route not found", "Session not found")


@pytest.fixture
async def prod_client(infra, db_name, fake_clerk, redis, mongo, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html>app</html>")
    settings = make_settings(infra, db_name, *fake_clerk, node_env="production", frontend_dist=str(dist))
    client = await serve(create_app(settings))
    yield client
    await client.close()


@pytest.mark.parametrize("path", ["/index.html%00.js", "/%00", "/assets/%00/x", "/" + "a" * 5000, "/%ff%fe"])
async def test_static_serving_never_5xx_on_bad_bytes(prod_client, path):
    resp = await prod_client.get(URL(path, encoded=True))
    assert resp.status in (200, 404), path
    if "%00" in path:
        assert resp.status == 404


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", NEW),
        ("application/x-www-form-urlencoded", b"problem=P&difficulty=easy"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="problem"\r\n\r\nP\r\n--x--\r\n',
        ),
        (None, NEW),
    ],
)
async def test_writes_with_a_body_must_be_json(client, mongo, factory: Factory, content_type, body):
    user = await factory.user("user")
    headers = {**user.headers, **({"Content-Type": content_type} if content_type else {})}
    resp = await client.post("/api/sessions", data=body, headers=headers)
    assert resp.status == 415
    assert await resp.json() == {"message": "Content-Type must be application/json", "code": "unsupported_media_type"}
    assert await mongo.sessions.count_documents({}) == 0


async def test_body_less_writes_and_signed_endpoints_need_no_json(client, factory: Factory):
    host, guest = await factory.user("host"), await factory.user("guest")
    resp = await client.post("/api/sessions", data=NEW, headers={**host.headers, "Content-Type": "application/json"})
    sid = (await resp.json())["session"]["_id"]
    assert (await client.post(f"/api/sessions/{sid}/join", headers=guest.headers)).status == 200
    resp = await client.post("/api/webhooks/clerk", data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status != 415  # signed by Svix: its own checks answer
    resp = await client.post("/api/inngest", data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status != 415


async def test_cookie_writes_from_another_origin_are_403(client, factory: Factory):
    user = await factory.user("user")
    cookie = {"Cookie": f"__session={user.token}", "Content-Type": "application/json"}
    for origin in ("https://evil.example", "null"):
        resp = await client.post("/api/sessions", data=NEW, headers={**cookie, "Origin": origin})
        assert resp.status == 403 and await resp.json() == {"message": "Origin not allowed", "code": "forbidden"}
    resp = await client.post("/api/sessions", data=NEW, headers={**cookie, "Referer": "https://evil.example/x"})
    assert resp.status == 403
    resp = await client.post("/api/sessions", data=NEW, headers={**cookie, "Origin": ORIGIN})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    # A Bearer token cannot be attached by another site's page: the Origin does not matter then.
    bearer = {**user.headers, "Content-Type": "application/json", "Origin": "https://tool.example"}
    assert (await client.post("/api/sessions", data=NEW, headers=bearer)).status == 201
    # Reads are not state-changing.
    assert (
        await client.get("/api/sessions/active", headers={**cookie, "Origin": "https://evil.example"})
    ).status == 200


async def test_a_client_trickling_its_headers_is_closed(settings, redis, mongo):
    fast = settings.model_copy(update={"http_header_timeout_s": 1.0})
    server = TestServer(create_app(fast))
    await server.start_server(**server_options(fast))
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        started = time.monotonic()
        closed_after = None
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for byte in request:  # one byte every 50 ms: the head would take over 6 s
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                data = await asyncio.wait_for(reader.read(1), 0.05)
            except TimeoutError:
                continue
            except ConnectionError:
                data = b""
            if data == b"":
                closed_after = time.monotonic() - started
                break
        writer.close()
        assert closed_after is not None, "still open after trickling the whole head"
        assert closed_after < 5.0
        # A client that sends its request at once is served as usual.
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/health")) as resp:
            assert resp.status == 200
    finally:
        await server.close()


async def test_metrics_in_production_need_the_token(infra, db_name, fake_clerk, redis, mongo):
    base = {"node_env": "production"}
    open_ = await serve(create_app(make_settings(infra, db_name, *fake_clerk, **base)))
    guarded = await serve(create_app(make_settings(infra, db_name, *fake_clerk, metrics_token="s3cret-token", **base)))
    try:
        assert (await open_.get("/metrics")).status == 404, "no token, no METRICS_PORT: not served"
        assert (await guarded.get("/metrics")).status == 401
        assert (await guarded.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
        resp = await guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert resp.status == 200 and "hireflow_http_requests_total" in await resp.text()
    finally:
        await open_.close()
        await guarded.close()


def test_inngest_dev_is_refused_in_production(tmp_path):
    env = clean_env(
        NODE_ENV="production",
        INNGEST_DEV="1",
        DB_URL="mongodb://127.0.0.1:1/x",
        REDIS_URL="redis://127.0.0.1:1/0",
        STREAM_API_KEY="k",
        STREAM_API_SECRET="s",
        CLERK_SECRET_KEY="sk",
    )
    for script in ("run_web.py", "run_worker.py"):
        result = subprocess.run(
            [sys.executable, str(ROOT / script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2, (script, result.stderr[-500:])
        assert "INNGEST_DEV is refused when NODE_ENV=production" in result.stderr
