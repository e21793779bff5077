"""The OpenAPI document describes exactly the routes the app serves, and is served with its page."""

from __future__ import annotations

from hireflow.web.openapi import DOCUMENT

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def served_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method in IGNORED_METHODS:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        routes.add((route.method.lower(), path))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, ops in DOCUMENT["paths"].items() for method in ops}


async def test_every_route_is_documented_and_every_documented_route_exists(client):
    assert served_routes(client.app) == documented_routes()


async def test_document_and_page_are_served(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1") and doc["paths"]["/api/sessions/{id}/join"]["post"]
    page = await client.get("/api/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "/api/openapi.json" in html
    assert "cdn" not in html.lower() and "<script src" not in html.lower(), "assets are served locally"


async def test_error_responses_match_the_error_schema(client, factory):
    user = await factory.user()
    resp = await client.post("/api/sessions/0123456789abcdef01234567/join", headers=user.headers)
    body = await resp.json()
    required = DOCUMENT["components"]["schemas"]["Error"]["required"]
    assert resp.status == 404 and all(key in body for key in required)
