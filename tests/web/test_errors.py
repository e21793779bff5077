"""One error shape, `{"message", "code"}`, for every failure: domain errors, aiohttp's own HTTP errors,
and requests aiohttp refuses before any middleware runs, which must not echo or log what they held."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from hireflow import embedded
from hireflow.observability import JsonFormatter, Metrics
from hireflow.web.middleware import errors
from tests.conftest import Factory, serve
from tests.support.workers import settings_env

ROOT = Path(__file__).resolve().parents[2]


async def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are, read until the server closes: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_unknown_route_and_wrong_method(client):
    resp = await client.get("/api/nothing-here")
    assert (resp.status, await resp.json()) == (404, {"message": "Route not found", "code": "route_not_found"})
    resp = await client.delete("/api/sessions/active")
    assert resp.status == 405 and "GET" in resp.headers["Allow"]
    assert await resp.json() == {"message": "Method not allowed", "code": "method_not_allowed"}


async def test_body_over_the_limit(client, factory: Factory):
    user = await factory.user()
    resp = await client.post(
        "/api/sessions",
        data=b"{" + b" " * (65 * 1024) + b"}",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert (resp.status, await resp.json()) == (413, {"message": "Request body too large", "code": "payload_too_large"})


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (web.HTTPBadRequest, 400, "bad_request"),
        (web.HTTPNotFound, 404, "route_not_found"),
        (web.HTTPRequestEntityTooLarge, 413, "payload_too_large"),
        (web.HTTPUnsupportedMediaType, 415, "unsupported_media_type"),
        (web.HTTPTooManyRequests, 429, "http_429"),
    ],
)
async def test_aiohttp_http_errors_get_the_shape(raised, status, code):
    """Whatever raises one of aiohttp's HTTP errors (a route, aiohttp itself) gets the one shape."""

    async def handler(_request: web.Request) -> web.Response:
        if raised is web.HTTPRequestEntityTooLarge:
            raise raised(max_size=1, actual_size=2)
        raise raised()

    app = web.Application(middlewares=[errors(Metrics())])
    app.router.add_get("/x", handler)
    client = await serve(app)
    try:
        resp = await client.get("/x")
        body = await resp.json()
        assert resp.status == status and body["code"] == code and body["message"]
    finally:
        await client.close()


async def test_oversize_header_is_json_and_no_token_byte_is_echoed_or_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    token = "eyJ" + "sEcReTtOkEn" * 840  # ~9 KiB: over aiohttp's 8 KiB per header line
    request = f"GET /api/sessions/active HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    status, headers, body = await raw_exchange(client.port, request)
    assert status == 431 and headers["content-type"].startswith("application/json")
    assert orjson.loads(body) == {"message": "Request headers too large", "code": "headers_too_large"}
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "refused a request" in logged
    assert "sEcReT" not in logged and "eyJ" not in logged, "token bytes in the logs"


async def test_unparsable_request_is_json(client, caplog):
    caplog.set_level(logging.DEBUG)
    status, headers, body = await raw_exchange(client.port, b"GET /\x00secret HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert orjson.loads(body) == {"message": "Bad request", "code": "bad_request"}
    assert "secret" not in "\n".join(JsonFormatter().format(r) for r in caplog.records)


def start_web(env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run_web.py")], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )


async def test_run_web_answers_oversize_headers_with_json_and_logs_no_token(settings, tmp_path):
    """The production entry point (`run_web.py`, web/serve.py) uses the same runner as the tests."""
    port = embedded.free_port()
    env = {**settings_env(settings), "PORT": str(port), "WEB_CONCURRENCY": "1"}
    log_path = tmp_path / "web.log"
    server = start_web(env, tmp_path, log_path)
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, server)
        token = "eyJ" + "sEcReTtOkEn" * 840
        request = f"GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        status, headers, body = await raw_exchange(port, request)
        assert status == 431 and headers["content-type"].startswith("application/json")
        assert orjson.loads(body)["code"] == "headers_too_large"
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 20)
    logged = log_path.read_text()
    assert "refused a request" in logged and "sEcReT" not in logged and "eyJ" not in logged
