"""The OpenAPI document describes exactly the routes the app serves, and is served with its page."""

from __future__ import annotations

import re

from hireflow.models import MAX_PROBLEM_CHARS, NewSession
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
    scripts = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert scripts and all(url.startswith("/api/") for url in scripts), "every asset is served here, no CDN"
    for url in scripts:
        asset = await client.get(url)
        assert asset.status == 200 and len(await asset.read()) > 0, url
    bundle = await client.get("/api/docs/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in await bundle.text()
    missing = await client.get("/api/docs/..%2Fsettings.py")
    assert missing.status == 404 and (await missing.json())["code"] == "not_found"


def test_schemas_come_from_the_models():
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["NewSession"] == NewSession.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schemas["NewSession"]["properties"]["problem"]["maxLength"] == MAX_PROBLEM_CHARS
    create = DOCUMENT["paths"]["/api/sessions"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewSession"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/OneSession")
    examples = create["responses"]["400"]["content"]["application/json"]["examples"]
    assert {e["value"]["message"] for e in examples.values()} >= {
        "Problem and difficulty are required",
        "Difficulty must be one of: easy, medium, hard",
        "Problem must be at most 200 characters",
    }


async def test_error_responses_match_the_error_schema(client, factory):
    user = await factory.user()
    resp = await client.post("/api/sessions/0123456789abcdef01234567/join", headers=user.headers)
    body = await resp.json()
    assert DOCUMENT["components"]["schemas"]["Error"]["required"] == ["message", "code"]
    assert resp.status == 404 and body == {"message": "Session not found", "code": "not_found"}
