"""The OpenAPI 3.1 description of every HTTP route, served at `/api/openapi.json` and rendered at
`/api/docs` (a self-contained page: no CDN). `tests/web/test_openapi.py` fails when a route exists
that this does not describe, or the other way round."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hireflow.web.jsonio import json_response

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


AUTH_ERRORS = {
    "401": _error("Unauthorized - invalid token"),
    "404": _error("User not found"),
    "503": _error("Service unavailable"),
}
SESSION_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Session id (24 hex characters; anything else is 404)",
}
ONE_SESSION = _json(
    {"type": "object", "required": ["session"], "properties": {"session": _ref("Session")}}, "The session"
)
SESSION_LIST = _json(
    {
        "type": "object",
        "required": ["sessions"],
        "properties": {"sessions": {"type": "array", "items": _ref("Session"), "maxItems": 20}},
    },
    "Newest first, at most 20",
)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}, "code": {"type": "string"}},
    },
    "User": {
        "type": "object",
        "required": ["_id", "name", "email", "profileImage", "clerkId"],
        "properties": {
            "_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
            "name": {"type": "string"},
            "email": {"type": "string"},
            "profileImage": {"type": "string"},
            "clerkId": {"type": "string"},
        },
    },
    "Session": {
        "type": "object",
        "required": [
            "_id",
            "problem",
            "difficulty",
            "host",
            "participant",
            "status",
            "callId",
            "streamStatus",
            "createdAt",
            "updatedAt",
            "endedAt",
        ],
        "properties": {
            "_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
            "problem": {"type": "string", "maxLength": 200},
            "difficulty": {"enum": ["easy", "medium", "hard"]},
            "host": {"oneOf": [_ref("User"), {"type": "null"}]},
            "participant": {"oneOf": [_ref("User"), {"type": "null"}]},
            "status": {"enum": ["active", "completed"]},
            "callId": {"type": "string"},
            "streamStatus": {"enum": ["pending", "ready", "failed", "deleted", "disabled"]},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "endedAt": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        },
    },
    "NewSession": {
        "type": "object",
        "required": ["problem", "difficulty"],
        "properties": {
            "problem": {"type": "string", "minLength": 1, "maxLength": 200},
            "difficulty": {"enum": ["easy", "medium", "hard"]},
        },
    },
}


def _health(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": _json({"type": "object", "properties": {"msg": {"type": "string"}}}, "OK")},
        }
    }


PATHS: dict[str, Any] = {
    "/health": _health("Liveness"),
    "/api/health": _health("Liveness"),
    "/books": _health("The seed's demo endpoint"),
    "/api/books": _health("The seed's demo endpoint"),
    "/health/ready": {
        "get": {
            "summary": "Readiness: MongoDB, Redis and the realtime bus",
            "responses": {
                "200": _json({"type": "object"}, "Everything answers"),
                "503": _error("Names what does not answer"),
            },
        }
    },
    "/api/chat/token": {
        "get": {
            "summary": "A Stream chat token for the caller",
            "security": BEARER,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["token", "userId", "userName", "userImage"],
                        "properties": {
                            "token": {"type": "string"},
                            "userId": {"type": "string"},
                            "userName": {"type": "string"},
                            "userImage": {"type": "string"},
                        },
                    },
                    "Token valid for a day",
                ),
                **AUTH_ERRORS,
            },
        }
    },
    "/api/sessions": {
        "post": {
            "summary": "Create a session",
            "description": "Safe to retry with the same `Idempotency-Key`: within 24 h the same user and key "
            "get the same 201 and the same session, never a second one.",
            "security": BEARER,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewSession")}}},
            "responses": {
                "201": ONE_SESSION,
                "400": _error("Invalid problem or difficulty, or a malformed Idempotency-Key"),
                "422": _error("Idempotency-Key already used with a different body"),
                "413": _error("Body over 64 KiB"),
                **AUTH_ERRORS,
            },
        }
    },
    "/api/sessions/active": {
        "get": {
            "summary": "The latest 20 active sessions",
            "security": BEARER,
            "responses": {"200": SESSION_LIST, **AUTH_ERRORS},
        }
    },
    "/api/sessions/my-recent": {
        "get": {
            "summary": "The caller's latest 20 completed sessions",
            "security": BEARER,
            "responses": {"200": SESSION_LIST, **AUTH_ERRORS},
        }
    },
    "/api/sessions/{id}": {
        "get": {
            "summary": "One session",
            "security": BEARER,
            "parameters": [SESSION_ID],
            "responses": {"200": ONE_SESSION, **AUTH_ERRORS, "404": _error("Session not found or User not found")},
        }
    },
    "/api/sessions/{id}/join": {
        "post": {
            "summary": "Join as the participant",
            "security": BEARER,
            "parameters": [SESSION_ID],
            "responses": {
                "200": ONE_SESSION,
                "400": _error("Completed, or your own session"),
                "409": _error("Session is full"),
                **AUTH_ERRORS,
                "404": _error("Session not found or User not found"),
            },
        }
    },
    "/api/sessions/{id}/end": {
        "post": {
            "summary": "End the session (host only)",
            "security": BEARER,
            "parameters": [SESSION_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["session", "message"],
                        "properties": {"session": _ref("Session"), "message": {"type": "string"}},
                    },
                    "Ended",
                ),
                "400": _error("Session is already completed"),
                "403": _error("Only the host can end the session"),
                **AUTH_ERRORS,
                "404": _error("Session not found or User not found"),
            },
        }
    },
    # The live pad (README, "Live interview pad").
    "/api/sessions/{id}/pad": {
        "get": {
            "summary": "WebSocket: the session's shared Yjs document (y-websocket protocol; host and participant)",
            "security": BEARER,
            "parameters": [
                SESSION_ID,
                {
                    "name": "token",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Clerk session token, for browsers (y-websocket `params`); never logged",
                },
            ],
            "responses": {
                "101": {"description": "Switching protocols; close codes 1007, 1008, 1009, 4001, 4409 (README)"},
                "400": _error("Not a WebSocket upgrade request"),
                "403": _error("Origin not allowed, or not the session's host or participant"),
                **AUTH_ERRORS,
                "404": _error("Session not found or User not found"),
            },
        }
    },
    "/api/sessions/{id}/pad/content": {
        "get": {
            "summary": "The pad's stored code and language (host and participant, during and after the session)",
            "security": BEARER,
            "parameters": [SESSION_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["code", "language", "updatedAt"],
                        "properties": {
                            "code": {"type": "string"},
                            "language": {"type": ["string", "null"]},
                            "updatedAt": {"type": ["string", "null"], "format": "date-time"},
                        },
                    },
                    "The pad as stored",
                ),
                "403": _error("Only the host and the participant can open the pad"),
                **AUTH_ERRORS,
                "404": _error("Session not found or User not found"),
            },
        }
    },
    "/api/ws": {
        "get": {
            "summary": "WebSocket: lobby and session rooms (protocol in the README)",
            "responses": {
                "101": {"description": "Switching protocols"},
                "400": _error("Not a WebSocket upgrade request"),
                "403": _error("Origin not allowed"),
            },
        }
    },
    "/api/webhooks/clerk": {
        "post": {
            "summary": "Clerk user events, Svix-signed",
            "responses": {
                "200": _json({"type": "object"}, "What the sync did"),
                "400": _error("Not a Clerk event"),
                "401": _error("Invalid webhook signature"),
                "503": _error("CLERK_WEBHOOK_SECRET not set"),
            },
        }
    },
    "/api/inngest": {
        op: {
            "summary": "Inngest SDK protocol (user sync functions)",
            "responses": {
                "200": {"description": "Inngest SDK response"},
                "401": {"description": "Bad or missing signature"},
            },
        }
        for op in ("get", "put", "post")
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (absent when METRICS_PORT moves them elsewhere)",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/api/docs": {"get": {"summary": "This document, rendered", "responses": {"200": {"description": "HTML"}}}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "HireFlow API",
        "version": "1.0.0",
        "description": 'Errors are always JSON: {"message": …, "code": …}.',
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (Clerk session token)"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "__session"},
        },
    },
}

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HireFlow API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2em}.op{margin:.6rem 0;padding:.5rem .8rem;border-left:4px solid #4a7}
.m{font-weight:700;text-transform:uppercase;margin-right:.5rem}.r{color:#555;font-size:90%}</style></head>
<body><h1>HireFlow API</h1><p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a></p>
<div id="ops"></div><script>
fetch('/api/openapi.json').then(r => r.json()).then(doc => {
  const root = document.getElementById('ops');
  for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) {
    const div = document.createElement('div'); div.className = 'op';
    const codes = Object.entries(op.responses).map(([c, r]) => c + ' ' + r.description).join(' · ');
    div.innerHTML = '<span class="m"></span><code></code> <span class="s"></span><div class="r"></div>';
    div.querySelector('.m').textContent = method; div.querySelector('code').textContent = path;
    div.querySelector('.s').textContent = (op.security ? '🔒 ' : '') + (op.summary || '');
    div.querySelector('.r').textContent = codes; root.appendChild(div);
  }
});
</script></body></html>
"""

routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    return json_response(DOCUMENT)


@routes.get("/api/docs")
async def docs(_request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")
