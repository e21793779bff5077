"""Build the Stream SDK clients from settings, pointed at `STREAM_CHAT_URL` / `STREAM_BASE_URL` when set."""

from __future__ import annotations

import time

from stream_chat import StreamChatAsync

from hireflow.errors import ServiceUnavailable
from hireflow.settings import Settings


def chat_client(settings: Settings) -> StreamChatAsync | None:
    """The async chat client, or None when Stream is not configured. Must be built inside a running loop."""
    if not settings.stream_configured:
        return None
    assert settings.stream_api_key and settings.stream_api_secret
    options = {"base_url": settings.stream_chat_url} if settings.stream_chat_url else {}
    return StreamChatAsync(
        settings.stream_api_key,
        settings.stream_api_secret.get_secret_value(),
        timeout=settings.stream_timeout_s,
        **options,
    )


def chat_user_token(chat: StreamChatAsync | None, clerk_id: str, *, ttl_s: int) -> str:
    """A Stream chat token for the user, signed locally by the SDK, expiring after `ttl_s`."""
    if chat is None:
        raise ServiceUnavailable("Chat is not configured")
    now = int(time.time())
    token: str = chat.create_token(clerk_id, exp=now + ttl_s, iat=now)
    return token
