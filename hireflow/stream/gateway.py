"""Every Stream call HireFlow makes, idempotent, with failures sorted into retry-later and give-up.

Video (calls, call members, users) goes through getstream's `AsyncStream`; chat channels through
stream-chat's `StreamChatAsync`. Neither SDK retries a POST, so nothing here does either: a
`StreamUnavailable` tells the job to come back later, a `StreamRejected` that it never will succeed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import httpx
from getstream import AsyncStream
from getstream.exceptions import StreamApiException, StreamRateLimitException, StreamTransportException
from getstream.models import CallRequest, MemberRequest, UserRequest
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException as ChatApiException

from hireflow.settings import Settings
from hireflow.stream.clients import chat_client

CALL_TYPE = "default"
CHANNEL_TYPE = "messaging"
_RETRYABLE_STATUSES = {408, 409, 425, 429}


class StreamUnavailable(Exception):
    """Transient: a timeout, a connection error, a 5xx or a 429. `retry_after_s` when Stream said."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StreamRejected(Exception):
    """Permanent: a 4xx that will fail the same way every time."""


@dataclass(frozen=True)
class StreamUser:
    id: str
    name: str
    image: str


def _from_video(exc: Exception) -> Exception:
    if isinstance(exc, StreamRateLimitException):
        retry_after = exc.retry_after.total_seconds() if exc.retry_after else None
        if retry_after is None and exc.rate_limit_info is not None:
            retry_after = max(0.0, exc.rate_limit_info.reset.timestamp() - time.time())
        return StreamUnavailable("video API rate limited (429)", retry_after)
    if isinstance(exc, StreamTransportException):
        return StreamUnavailable(f"video API unreachable: {exc.error_type}")
    if isinstance(exc, StreamApiException):
        return _by_status("video", exc.status_code, exc.message)
    if isinstance(exc, httpx.HTTPError | TimeoutError):
        return StreamUnavailable(f"video API unreachable: {type(exc).__name__}")
    return exc


def _from_chat(exc: Exception) -> Exception:
    if isinstance(exc, ChatApiException):
        return _by_status("chat", exc.status_code, str(exc))
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return StreamUnavailable(f"chat API unreachable: {type(exc).__name__}")
    return exc


def _by_status(api: str, status: int, detail: str) -> Exception:
    """An HTTP error answer from either API: worth retrying (5xx, 408/409/425/429) or not."""
    if status >= 500 or status in _RETRYABLE_STATUSES:
        return StreamUnavailable(f"{api} API answered {status}")
    return StreamRejected(f"{api} API refused with {status}: {detail}")


def _is_missing(exc: Exception) -> bool:
    status = getattr(exc, "status_code", None)
    return status == 404


class StreamGateway:
    """Owns both SDK clients; build inside a running loop, close with `aclose`."""

    def __init__(self, video: AsyncStream, chat: StreamChatAsync) -> None:
        self._video = video
        self._chat = chat

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamGateway | None:
        chat = chat_client(settings)
        if chat is None:
            return None
        assert settings.stream_api_key and settings.stream_api_secret
        video = AsyncStream(
            api_key=settings.stream_api_key,
            api_secret=settings.stream_api_secret.get_secret_value(),
            # getstream reads STREAM_BASE_URL only when given None; pass the setting explicitly.
            base_url=settings.stream_base_url or None,
            timeout=settings.stream_timeout_s,
        )
        return cls(video, chat)

    async def aclose(self) -> None:
        await self._video.aclose()
        await self._chat.close()

    async def upsert_users(self, users: list[StreamUser]) -> None:
        requests = {u.id: UserRequest(id=u.id, name=u.name, image=u.image or None) for u in users}
        try:
            await self._video.update_users(users=requests)
        except Exception as exc:
            raise _from_video(exc) from exc

    async def delete_user(self, user_id: str) -> None:
        try:
            await self._video.delete_users(user_ids=[user_id], user="hard")
        except Exception as exc:
            if _is_missing(exc):
                return
            raise _from_video(exc) from exc

    async def ensure_call(self, call_id: str, *, host_id: str, members: list[str], custom: dict[str, object]) -> None:
        """Get-or-create the video call `default:<call_id>` and make sure `members` belong to it."""
        call = self._video.video.call(CALL_TYPE, call_id)
        try:
            await call.get_or_create(
                data=CallRequest(
                    created_by_id=host_id, custom=custom, members=[MemberRequest(user_id=m) for m in members]
                )
            )
            await call.update_call_members(update_members=[MemberRequest(user_id=m) for m in members])
        except Exception as exc:
            raise _from_video(exc) from exc

    async def ensure_channel(self, channel_id: str, *, name: str, host_id: str, members: list[str]) -> None:
        """Get-or-create the chat channel `messaging:<channel_id>` (members [host]) and add the others."""
        channel = self._chat.channel(CHANNEL_TYPE, channel_id, {"name": name, "members": [host_id]})
        try:
            await channel.create(host_id)
            others = [m for m in members if m != host_id]
            if others:
                await channel.add_members([{"user_id": m} for m in others])
        except (TimeoutError, ChatApiException, aiohttp.ClientError) as exc:
            raise _from_chat(exc) from exc

    async def delete_call(self, call_id: str) -> None:
        try:
            await self._video.video.call(CALL_TYPE, call_id).delete(hard=True)
        except Exception as exc:
            if _is_missing(exc):
                return
            raise _from_video(exc) from exc

    async def delete_channel(self, channel_id: str) -> None:
        try:
            await self._chat.channel(CHANNEL_TYPE, channel_id).delete(hard=True)
        except (TimeoutError, ChatApiException, aiohttp.ClientError) as exc:
            if _is_missing(exc):
                return
            raise _from_chat(exc) from exc
