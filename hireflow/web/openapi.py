"""The OpenAPI 3.1 description of every HTTP route, served at `/api/openapi.json`.

Every schema comes from the pydantic models of `hireflow/models.py` (the ones that validate
requests); this module only says which operation takes and returns which, with its error cases.
`tests/web/test_openapi.py` fails when a route exists that this does not describe, or the other way
round; the schemathesis test checks live responses against it. Rendered by `web/docs.py`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hireflow import models
from hireflow.web.jsonio import json_response

SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
UNAUTHORIZED = "Unauthorized - invalid token"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*cases: tuple[int, str, str]) -> dict[str, Any]:
    """Error responses: (status, message, code) each; several cases of one status are listed together."""
    by_status: dict[str, list[tuple[str, str]]] = {}
    for status, message, code in cases:
        by_status.setdefault(str(status), []).append((message, code))
    return {
        status: {
            "description": " | ".join(f"`{message}` ({code})" for message, code in found),
            "content": {
                "application/json": {
                    "schema": _ref(models.Error),
                    "examples": {message: {"value": {"message": message, "code": code}} for message, code in found},
                }
            },
        }
        for status, found in by_status.items()
    }


AUTH_ERRORS = [
    (401, UNAUTHORIZED, "token_missing"),
    (401, UNAUTHORIZED, "token_expired"),
    (401, UNAUTHORIZED, "token_invalid"),
    (401, UNAUTHORIZED, "user_unknown"),
    (503, "Service unavailable", "service_unavailable"),
]
SESSION_NOT_FOUND = (404, "Session not found", "not_found")
RATE_LIMITED = (429, "Too many requests: a per-user quota is used up; see Retry-After", "rate_limited")
NOT_JSON = (415, "Content-Type must be application/json", "unsupported_media_type")
INVITE_CODE = {
    "name": "inviteCode",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "The invite code of a private session (not needed by its host and participant)",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Safe to retry: within 24 h the same user and key get the same 201 and the same session, "
    "never a second one; the same key with another body is 422",
}
SESSION_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "examples": ["6566f1c2a3b4c5d6e7f80912"]},
    "description": "Session `_id` (24 hex characters; anything else is 404 `Session not found`)",
}


def _op(
    summary: str,
    ok: tuple[int, type[BaseModel] | None, str],
    *errors: tuple[int, str, str],
    auth: bool = False,
    body: type[BaseModel] | None = None,
    optional_body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    status, model, ok_description = ok
    cases = [*errors, *AUTH_ERRORS] if auth else list(errors)
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(status): _json(model, ok_description) if model else {"description": ok_description},
            **_errors(*cases),
        },
    }
    if description:
        op["description"] = description
    if auth:
        op["security"] = SECURED
    if params:
        op["parameters"] = params
    if body is not None or optional_body is not None:
        schema = _ref(body or optional_body)  # type: ignore[arg-type]
        op["requestBody"] = {"required": body is not None, "content": {"application/json": {"schema": schema}}}
    return op


HEALTH = {"get": _op("Liveness", (200, models.Health, "Always, while the process serves"))}
DEMO = {"get": _op("Demo endpoint", (200, models.Health, "A fixed message"))}

PATHS: dict[str, Any] = {
    "/health": HEALTH,
    "/api/health": HEALTH,
    "/books": DEMO,
    "/api/books": DEMO,
    "/health/ready": {
        "get": _op(
            "Readiness: MongoDB, Redis and the realtime bus",
            (200, models.Ready, "Everything answers"),
            (503, "Service unavailable: mongodb, redis, realtime", "not_ready"),
        )
    },
    "/api/chat/token": {
        "get": _op(
            "A Stream chat token for the caller",
            (200, models.ChatToken, "Token valid for a day"),
            (503, "Chat is not configured", "service_unavailable"),
            auth=True,
        )
    },
    "/api/sessions": {
        "post": _op(
            "Create a session",
            (201, models.OneSession, "The new session, the caller as host"),
            *((400, message, "bad_request") for message in models.NEW_SESSION_MESSAGES),
            (400, "Malformed JSON body", "bad_request"),
            (400, "Idempotency-Key must be 1 to 255 printable characters", "bad_request"),
            (409, "Could not allocate a session id, please retry", "conflict"),
            (409, "Could not allocate a call id, please retry", "conflict"),
            (413, "Request body too large", "payload_too_large"),
            (415, "Content-Type must be application/json", "unsupported_media_type"),
            (422, "Idempotency-Key was already used with a different request", "unprocessable"),
            (422, "Idempotency-Key could not be claimed, please retry", "unprocessable"),
            (429, "You can host at most 3 active sessions at once; end one first", "rate_limited"),
            RATE_LIMITED,
            auth=True,
            body=models.NewSession,
            params=[IDEMPOTENCY_KEY],
        )
    },
    "/api/sessions/active": {
        "get": _op("The latest 20 active sessions", (200, models.SessionList, "Newest first"), auth=True)
    },
    "/api/sessions/my-recent": {
        "get": _op(
            "The caller's latest 20 completed sessions (as host or participant)",
            (200, models.SessionList, "Newest first"),
            auth=True,
        )
    },
    "/api/sessions/{id}": {
        "get": _op(
            "One session",
            (200, models.OneSession, "The session"),
            SESSION_NOT_FOUND,
            auth=True,
            params=[SESSION_ID, INVITE_CODE],
            description="A completed session is readable by its two members only; a private one also with its"
            " invite code. Anyone else gets 404, as for a missing id.",
        )
    },
    "/api/sessions/{id}/join": {
        "post": _op(
            "Join as the participant",
            (200, models.OneSession, "Joined (or already the participant)"),
            (400, "Cannot join a completed session", "bad_request"),
            (400, "Host cannot join their own session as participant", "bad_request"),
            SESSION_NOT_FOUND,
            (409, "Session is full", "conflict"),
            NOT_JSON,
            RATE_LIMITED,
            auth=True,
            params=[SESSION_ID],
            optional_body=models.JoinSession,
        )
    },
    "/api/sessions/{id}/invite-code": {
        "post": _op(
            "Rotate the invite code of a private session (host only); the old code stops working",
            (200, models.OneSession, "The session with its new code"),
            (400, "Session is not private", "bad_request"),
            (403, "Only the host can rotate the invite code", "forbidden"),
            SESSION_NOT_FOUND,
            RATE_LIMITED,
            auth=True,
            params=[SESSION_ID],
        )
    },
    "/api/sessions/{id}/end": {
        "post": _op(
            "End the session (host only)",
            (200, models.EndedSession, "Ended; no pad edit sent after this answer is stored"),
            (400, "Session is already completed", "bad_request"),
            (403, "Only the host can end the session", "forbidden"),
            SESSION_NOT_FOUND,
            RATE_LIMITED,
            auth=True,
            params=[SESSION_ID],
        )
    },
    # The live pad (README, "Live interview pad").
    "/api/sessions/{id}/pad": {
        "get": _op(
            "WebSocket: the session's shared Yjs document (y-websocket protocol; host and participant)",
            (101, None, "Switching protocols; close codes 1007, 1008, 1009, 4001, 4409 (README)"),
            (400, "Not a WebSocket upgrade request", "bad_request"),
            (403, "Only the host and the participant can open the pad", "forbidden"),
            (403, "Origin not allowed: 'https://…' is not in CLIENT_URL", "origin_not_allowed"),
            SESSION_NOT_FOUND,
            auth=True,
            params=[
                SESSION_ID,
                {
                    "name": "token",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Clerk session token, for browsers (y-websocket `params`); never logged",
                },
            ],
        )
    },
    "/api/sessions/{id}/pad/content": {
        "get": _op(
            "The pad's stored code and language (host and participant, during and after the session)",
            (200, models.PadContent, "The pad as stored"),
            (403, "Only the host and the participant can open the pad", "forbidden"),
            SESSION_NOT_FOUND,
            auth=True,
            params=[SESSION_ID],
        )
    },
    # Code runs (README, "Code runs").
    "/api/sessions/{id}/runs": {
        "post": _op(
            "Queue a code run (the session's host or participant; events on `session:<id>`)",
            (202, models.OneRun, "Queued"),
            *((400, message, "bad_request") for message in models.NEW_RUN_MESSAGES),
            (400, "Unsupported language: …", "bad_request"),
            (400, "Cannot run code in a completed session", "bad_request"),
            (403, "Only the host and the participant can run code in this session", "forbidden"),
            SESSION_NOT_FOUND,
            NOT_JSON,
            (429, "You already have a run in progress; wait for it to finish", "rate_limited"),
            (429, "This session already has 2 runs in progress; wait for one to finish", "rate_limited"),
            (429, "Too many runs: at most 10 per minute; try again in … s", "rate_limited"),
            (503, "Code execution is not configured", "service_unavailable"),
            auth=True,
            body=models.NewRun,
            params=[SESSION_ID],
        ),
        "get": _op(
            "The session's latest 20 runs, newest first",
            (200, models.RunList, "Newest first"),
            (403, "Only the host and the participant can see the runs of this session", "forbidden"),
            SESSION_NOT_FOUND,
            auth=True,
            params=[SESSION_ID],
        ),
    },
    "/api/runtimes": {
        "get": _op(
            "Languages and versions the engine runs ([] without PISTON_URL)",
            (200, models.Runtimes, "Cached from Piston's runtimes"),
            auth=True,
        )
    },
    "/api/ws": {
        "get": _op(
            "WebSocket: lobby and session rooms",
            (101, None, "Switching protocols"),
            (400, "Bad request", "bad_request"),
            (403, "Origin not allowed: 'https://…' is not in CLIENT_URL", "origin_not_allowed"),
            description="The protocol (frames, resume, close codes) is in docs/websocket.md.",
        )
    },
    "/api/webhooks/clerk": {
        "post": _op(
            "Clerk user events, Svix-signed",
            (200, None, "What the sync did"),
            (400, "Expected a Clerk event with type and data", "bad_request"),
            (401, "Invalid webhook signature", "unauthorized"),
            (503, "Clerk webhooks are not configured (CLERK_WEBHOOK_SECRET)", "not_configured"),
            description="The body is the Svix-signed Clerk event, verified before it is parsed.",
        )
    },
    "/api/inngest": {
        method: {
            "summary": "Inngest SDK protocol (user sync functions)",
            "responses": {
                "200": {"description": "Inngest SDK response"},
                "401": {"description": "Bad or missing signature"},
            },
        }
        for method in ("get", "put", "post")
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (absent when METRICS_PORT moves them elsewhere; in production only"
            " with `Authorization: Bearer <METRICS_TOKEN>`)",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/api/docs": {
        "get": {"summary": "This document, rendered (Swagger UI)", "responses": {"200": {"description": "HTML"}}}
    },
    "/api/docs/{file}": {
        "get": {
            "summary": "The docs page's assets (Swagger UI, served from the installed package)",
            "parameters": [{"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "A script or stylesheet"}, **_errors((404, "Not found", "not_found"))},
        }
    },
}


TAGS = [
    {"name": "sessions", "description": "Interview sessions and the chat token (Clerk session token required)"},
    {"name": "realtime", "description": "The WebSocket feed (protocol: docs/websocket.md)"},
    {"name": "user sync", "description": "Clerk user events, through Inngest or Svix-signed webhooks"},
    {"name": "operations", "description": "Health, metrics and this documentation"},
]


def _tag(path: str) -> str:
    if path.startswith(("/api/sessions", "/api/chat")):
        return "sessions"
    if path == "/api/ws":
        return "realtime"
    if path.startswith(("/api/inngest", "/api/webhooks")):
        return "user sync"
    return "operations"


for _path, _ops in PATHS.items():
    for _method in _ops:
        _ops[_method] = {"tags": [_tag(_path)], **_ops[_method]}


def _schemas() -> dict[str, Any]:
    wanted = [(m, "validation") for m in models.REQUEST_MODELS] + [(m, "serialization") for m in models.RESPONSE_MODELS]
    _keys, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    schemas: dict[str, Any] = top["$defs"]
    return schemas


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "HireFlow API",
        "version": "1.0.0",
        "description": 'Errors are always JSON: `{"message": …, "code": …}`. Authenticate with a Clerk session '
        "token (in development: `make token NAME=alice`) through **Authorize**, then **Try it out**. "
        "Privacy: user objects carry `email` only for the two members of a session; a completed session is "
        "readable by its members only; a private session needs its invite code. Writes with a body must be "
        "`application/json` (415); per-user quotas answer 429 with `Retry-After`.",
    },
    "tags": TAGS,
    "paths": PATHS,
    "components": {
        "schemas": _schemas(),
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (Clerk session token)"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "__session"},
        },
    },
}

routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    return json_response(DOCUMENT)
