"""Metrics, request ids and log lines: what operators rely on, and that no secret ever reaches a log."""

from __future__ import annotations

import json
import logging

import aiohttp

from hireflow import embedded
from hireflow.observability import DevFormatter, JsonFormatter
from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.workers import eventually


async def test_metrics_count_requests_by_route_template(client, factory: Factory, ws_client):
    user = await factory.user()
    for _ in range(2):
        await client.get("/api/sessions/0123456789abcdef01234567", headers=user.headers)
    await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=user.headers)
    ws = await ws_client(client, user.token)
    await ws.subscribe("lobby")
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert 'hireflow_http_requests_total{method="GET",route="/api/sessions/{id}",status="404"} 2.0' in text
    assert 'hireflow_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/sessions"}' in text
    assert "hireflow_ws_connections 1.0" in text
    assert 'hireflow_jobs_total{job="sync_session",outcome="enqueued"} 1.0' in text
    assert "hireflow_events_serialized_total" in text and "hireflow_ws_queue_overflows_total" in text


async def test_metrics_on_their_own_port_or_off(infra, db_name, fake_clerk, redis, mongo):
    port = embedded.free_port()
    moved = await serve(create_app(make_settings(infra, db_name, *fake_clerk, metrics_port=port)))
    off = await serve(create_app(make_settings(infra, db_name, *fake_clerk, metrics_enabled=False)))
    try:
        assert (await moved.get("/metrics")).status == 404
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200 and "hireflow_http_requests_total" in await resp.text()
        assert (await off.get("/metrics")).status == 404
    finally:
        await moved.close()
        await off.close()


async def test_workers_expose_job_metrics_on_their_port(client, factory: Factory, settings, worker):
    port = embedded.free_port()
    await worker(settings.model_copy(update={"worker_metrics_port": port}))
    user = await factory.user()
    await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=user.headers)

    async def counted():
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            return 'hireflow_jobs_total{job="sync_session",outcome="succeeded"} 1.0' in await resp.text()

    await eventually(counted)


async def test_request_ids_are_returned_and_follow_into_jobs(client, factory: Factory, worker, caplog):
    caplog.set_level(logging.INFO)
    user = await factory.user()
    resp = await client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/api/health", headers={"X-Request-ID": "bad id with spaces"})
    generated = resp.headers["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32

    await worker()
    resp = await client.post(
        "/api/sessions",
        json={"problem": "P", "difficulty": "easy"},
        headers={**user.headers, "X-Request-ID": "req-create-1"},
    )
    assert resp.status == 201

    def job_line():
        return [r for r in caplog.records if r.name == "hireflow.jobs" and getattr(r, "job", "") == "sync_session"]

    async def job_logged():
        return job_line()

    await eventually(job_logged)
    formatter = JsonFormatter()
    request_lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "hireflow.access"]
    create = next(line for line in request_lines if line.get("route") == "/api/sessions")
    assert create["method"] == "POST" and create["status"] == 201 and create["user_id"] == user.doc["clerkId"]
    assert create["duration_ms"] >= 0
    # Development's readable lines carry the same two ids.
    dev_line = next(
        DevFormatter().format(r)
        for r in caplog.records
        if r.name == "hireflow.access" and getattr(r, "route", "") == "/api/sessions"
    )
    assert "POST /api/sessions 201" in dev_line and dev_line.endswith(f"rid=req-create-1 user={user.doc['clerkId']}")
    # The job ran in this process: its record carries the enqueuing request's id.
    job = json.loads(formatter.format(job_line()[0]))
    assert job["outcome"] == "succeeded" and job["session_id"]
    assert any(json.loads(formatter.format(r)).get("request_id") == "req-create-1" for r in job_line())


async def test_no_secret_or_token_is_ever_logged(client, factory: Factory, settings, worker, caplog, fake_clerk):
    caplog.set_level(logging.DEBUG)
    await worker()
    host, guest = await factory.user("host"), await factory.user("guest")
    _late_id, late_token = factory.clerk_only("late")
    resp = await client.post("/api/sessions", json={"problem": "P", "difficulty": "easy"}, headers=host.headers)
    session = (await resp.json())["session"]
    await client.post(f"/api/sessions/{session['_id']}/join", headers=guest.headers)
    chat = await (await client.get("/api/chat/token", headers=host.headers)).json()
    await client.get("/api/sessions/active", headers={"Authorization": f"Bearer {late_token}"})
    await client.get("/api/sessions/active", headers={"Authorization": "Bearer not-a-token"})
    await client.post(f"/api/sessions/{session['_id']}/end", headers=host.headers)
    await eventually(lambda: _true(any(getattr(r, "job", "") == "sync_session" for r in caplog.records)))

    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    secrets = {
        "stream secret": settings.stream_api_secret.get_secret_value(),
        "clerk secret": settings.clerk_secret_key.get_secret_value(),
        "host token": host.token,
        "late token": late_token,
        "chat token": chat["token"],
    }
    for name, value in secrets.items():
        assert value not in logged, f"{name} appears in the logs"
    assert len(caplog.records) > 10, "the run did log"


async def _true(value: bool) -> bool:
    return value


async def test_the_request_log_writes_json_lines_directly_when_only_the_json_stream_listens(client, factory: Factory):
    """Production logging: the request line skips `logging` (no LogRecord) but says what JsonFormatter
    would; lines of one loop iteration are written together."""
    import asyncio
    import io

    from hireflow.observability import JsonStreamHandler

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    root.handlers[:] = [JsonStreamHandler(out)]
    root.setLevel(logging.INFO)
    try:
        user = await factory.user()
        for _ in range(3):
            resp = await client.get("/api/sessions/active", headers={**user.headers, "X-Request-ID": "rid-1"})
            assert resp.status == 200
        await asyncio.sleep(0.05)
    finally:
        root.handlers[:], root.level = saved, saved_level
    out.flush()
    lines = [json.loads(line) for line in out.buffer.getvalue().decode().splitlines()]  # type: ignore[attr-defined]
    access = [line for line in lines if line["logger"] == "hireflow.access"]
    assert len(access) == 3
    line = access[0]
    assert line["route"] == "/api/sessions/active" and line["status"] == 200 and line["request_id"] == "rid-1"
    assert line["message"].startswith("GET /api/sessions/active 200 ") and line["level"] == "info"
    assert line["user_id"] == user.doc["clerkId"] and line["time"].endswith("Z")
    assert isinstance(line["duration_ms"], float)
