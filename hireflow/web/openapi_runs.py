"""The OpenAPI description of the code-run routes, merged into `openapi.DOCUMENT` (kept apart so that
the run routes' description lives next to nothing else)."""

from __future__ import annotations

from typing import Any

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
_TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}}

SCHEMAS: dict[str, Any] = {
    "Run": {
        "type": "object",
        "required": [
            "_id",
            "session",
            "by",
            "language",
            "version",
            "status",
            "stdout",
            "stderr",
            "truncated",
            "exitCode",
            "signal",
            "durationMs",
            "error",
            "createdAt",
            "startedAt",
            "finishedAt",
        ],
        "properties": {
            "_id": _ID,
            "session": _ID,
            "by": {
                "type": "object",
                "required": ["_id", "name"],
                "properties": {"_id": _ID, "name": {"type": "string"}},
            },
            "language": {"type": "string"},
            "version": {"type": "string", "description": "`*` until the engine picked one"},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "timed_out", "rejected"]},
            "stdout": {"type": "string", "description": "At most 64 KiB"},
            "stderr": {"type": "string", "description": "At most 64 KiB"},
            "truncated": {"type": "boolean", "description": "stdout or stderr was cut"},
            "exitCode": {"type": ["integer", "null"]},
            "signal": {"type": ["string", "null"]},
            "durationMs": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"], "description": "Why a run failed, timed out or was rejected"},
            "createdAt": _TIME,
            "startedAt": {"oneOf": [_TIME, {"type": "null"}]},
            "finishedAt": {"oneOf": [_TIME, {"type": "null"}]},
        },
    },
    "NewRun": {
        "type": "object",
        "required": ["language", "code"],
        "properties": {
            "language": {"type": "string", "minLength": 1, "maxLength": 40, "description": "Name or alias"},
            "version": {"type": "string", "minLength": 1, "maxLength": 40, "description": "Default: the newest"},
            "code": {"type": "string", "description": "At most 64 KiB (UTF-8)"},
            "stdin": {"type": "string", "description": "At most 16 KiB (UTF-8)"},
        },
    },
    "Runtime": {
        "type": "object",
        "required": ["language", "version", "aliases"],
        "properties": {
            "language": {"type": "string"},
            "version": {"type": "string"},
            "aliases": {"type": "array", "items": {"type": "string"}},
        },
    },
}

_SESSION_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Session id (24 hex characters; anything else is 404)",
}
_AUTH_ERRORS = {"401": _error("Unauthorized - invalid token"), "503": _error("Service unavailable")}

PATHS: dict[str, Any] = {
    "/api/sessions/{id}/runs": {
        "post": {
            "summary": "Queue a code run (the session's host or participant; events on `session:<id>`)",
            "security": BEARER,
            "parameters": [_SESSION_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewRun")}}},
            "responses": {
                "202": _json({"type": "object", "required": ["run"], "properties": {"run": _ref("Run")}}, "Queued"),
                "400": _error("Invalid body, unsupported language, or a completed session"),
                "403": _error("Not the session's host or participant"),
                "404": _error("Session not found or User not found"),
                "413": _error("Body too large"),
                "429": {
                    "description": "A run of yours in flight, two in the session, or ten in the last minute",
                    "headers": _RETRY_AFTER,
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
                **_AUTH_ERRORS,
                "503": _error("Code execution is not configured, or Service unavailable"),
            },
        },
        "get": {
            "summary": "The session's latest 20 runs, newest first",
            "security": BEARER,
            "parameters": [_SESSION_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["runs"],
                        "properties": {"runs": {"type": "array", "items": _ref("Run"), "maxItems": 20}},
                    },
                    "Newest first",
                ),
                "403": _error("Not the session's host or participant"),
                "404": _error("Session not found or User not found"),
                **_AUTH_ERRORS,
            },
        },
    },
    "/api/runtimes": {
        "get": {
            "summary": "Languages and versions the engine runs ([] without PISTON_URL)",
            "security": BEARER,
            "responses": {
                "200": _json({"type": "array", "items": _ref("Runtime")}, "Cached from Piston's runtimes"),
                "404": _error("User not found"),
                **_AUTH_ERRORS,
            },
        }
    },
}
