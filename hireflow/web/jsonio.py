"""JSON in and out: orjson responses and request bodies with clear 400/413 answers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from hireflow.errors import BadRequest, PayloadTooLarge


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def json_body(body: bytes, status: int = 200) -> web.Response:
    """A response of JSON already serialized (a cached read's prebuilt body)."""
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, message: str, code: str) -> web.Response:
    """The one error shape: `{"message": <what the frontend shows>, "code": <what a program tests>}`."""
    return json_response({"message": message, "code": code}, status)


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The parsed body; an empty body reads as `{}` (like Express's `json()` middleware)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("Request body too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge("Request body too large") from exc
    if len(raw) > max_bytes:
        raise PayloadTooLarge("Request body too large")
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("Malformed JSON body") from exc
