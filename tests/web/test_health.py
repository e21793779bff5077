from __future__ import annotations

from tests.conftest import ORIGIN


async def test_health_routes(client):
    for path in ("/health", "/api/health"):
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {"msg": "api is up and running"}


async def test_books(client):
    for path in ("/books", "/api/books"):
        resp = await client.get(path)
        assert resp.status == 200
        assert (await resp.json())["msg"]


async def test_ready_when_dependencies_answer(client):
    resp = await client.get("/health/ready")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "mongodb": "ok", "redis": "ok", "realtime": "ok"}


async def test_unknown_route_is_json_404(client):
    resp = await client.get("/api/nope")
    assert resp.status == 404
    assert await resp.json() == {"message": "Route not found", "code": "route_not_found"}


async def test_wrong_method_is_json_405(client):
    resp = await client.delete("/api/health")
    assert resp.status == 405
    assert (await resp.json())["message"] == "Method not allowed"


async def test_cors_reflects_allowed_origin_with_credentials(client):
    resp = await client.get("/api/health", headers={"Origin": ORIGIN})
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"


async def test_cors_preflight(client):
    resp = await client.options(
        "/api/sessions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization,content-type"


async def test_cors_ignores_foreign_origin(client):
    resp = await client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
