"""Clerk user sync over HTTP: the Inngest functions at `/api/inngest` and Clerk's own (Svix-signed)
webhook at `/api/webhooks/clerk`. Both run `UserSync` (hireflow/services/user_sync.py)."""

from __future__ import annotations

from typing import Any

import inngest
import orjson
from aiohttp import web
from svix.webhooks import Webhook, WebhookVerificationError

from hireflow.services.user_sync import UserSync
from hireflow.settings import Settings
from hireflow.web import inngest_aiohttp
from hireflow.web.appkeys import SETTINGS, USER_SYNC
from hireflow.web.jsonio import error_response, json_response

APP_ID = "hireflow"

# (function id, Inngest event, Clerk event type); the ids are the seed's where it had them.
FUNCTIONS = [
    ("sync-user", "clerk/user.created", "user.created"),
    ("update-user", "clerk/user.updated", "user.updated"),
    ("delete-user-from-db", "clerk/user.deleted", "user.deleted"),
]


def inngest_dev_mode(settings: Settings) -> bool:
    value = (settings.inngest_dev or "").strip().lower()
    return bool(value) and value not in ("0", "false", "no")


def inngest_routes(settings: Settings, app: web.Application) -> list[web.RouteDef]:
    """The Inngest endpoint; without a signing key outside dev mode, every request is refused (401)."""
    dev = inngest_dev_mode(settings)
    signing_key = settings.inngest_signing_key.get_secret_value() if settings.inngest_signing_key else None
    if not dev and not signing_key:

        async def refuse(_request: web.Request) -> web.Response:
            return error_response(401, "Inngest is not configured (INNGEST_SIGNING_KEY)", "unauthorized")

        return [web.route(m, inngest_aiohttp.SERVE_PATH, refuse) for m in ("GET", "POST", "PUT")]

    client = inngest.Inngest(
        app_id=APP_ID,
        is_production=not dev,
        signing_key=signing_key,
        event_key=settings.inngest_event_key.get_secret_value() if settings.inngest_event_key else None,
    )

    def make(fn_id: str, event: str, clerk_type: str) -> inngest.Function[Any]:
        @client.create_function(fn_id=fn_id, trigger=inngest.TriggerEvent(event=event))
        async def run(ctx: inngest.Context) -> dict[str, Any]:
            return await app[USER_SYNC].handle(clerk_type, dict(ctx.event.data))

        return run

    return inngest_aiohttp.routes(client, [make(*spec) for spec in FUNCTIONS])


webhook_routes = web.RouteTableDef()


@webhook_routes.post("/api/webhooks/clerk")
async def clerk_webhook(request: web.Request) -> web.Response:
    """Clerk's webhook (through Svix): 401 on a bad or stale signature, else the sync's result."""
    secret = request.app[SETTINGS].clerk_webhook_secret
    if secret is None:
        return error_response(503, "Clerk webhooks are not configured (CLERK_WEBHOOK_SECRET)", "not_configured")
    body = await request.read()
    try:
        body.decode("utf-8")  # what Svix signs (its verify would raise on other bytes: a 500)
    except UnicodeDecodeError:
        return error_response(400, "Malformed JSON body", "bad_request")
    try:
        Webhook(secret.get_secret_value()).verify(body, dict(request.headers))
    except WebhookVerificationError:
        return error_response(401, "Invalid webhook signature", "unauthorized")
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_response(400, "Malformed JSON body", "bad_request")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("data"), dict):
        return error_response(400, "Expected a Clerk event with type and data", "bad_request")
    sync: UserSync = request.app[USER_SYNC]
    return json_response(await sync.handle(event["type"], event["data"]))
