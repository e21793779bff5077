"""The WebSocket protocol's messages (see CONTRACT.md, "WebSocket"): parsing what clients send,
building what the server sends. Events are serialized once per process, here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from hireflow.store.sessions import parse_id

LOBBY = "lobby"
SESSION_PREFIX = "session:"

# Close codes beyond RFC 6455's.
CLOSE_AUTH = 4001
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013

ResetReason = Literal["retention", "epoch", "since", "slow"]


class ProtocolError(Exception):
    """A frame the server cannot act on; answered with an `error` frame, the connection stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class Subscribe:
    topic: str
    epoch: str | None
    since: int | None
    invite_code: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    topic: str


@dataclass(frozen=True)
class Ping:
    pass


ClientMessage = Auth | Subscribe | Unsubscribe | Ping


def session_topic(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def valid_topic(topic: object) -> str:
    if topic == LOBBY:
        return LOBBY
    if isinstance(topic, str) and topic.startswith(SESSION_PREFIX) and parse_id(topic[len(SESSION_PREFIX) :]):
        return topic
    raise ProtocolError("bad_topic", "topic must be 'lobby' or 'session:<id>'")


def parse(raw: str | bytes) -> ClientMessage:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("bad_json", "frames must be JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "frames must be JSON objects")
    kind = data.get("type")
    if kind == "ping":
        return Ping()
    if kind == "auth":
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("bad_message", "auth needs a token")
        return Auth(token)
    if kind == "subscribe":
        epoch, since = data.get("epoch"), data.get("since")
        if epoch is not None and not isinstance(epoch, str):
            raise ProtocolError("bad_message", "epoch must be a string")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise ProtocolError("bad_message", "since must be a non-negative integer")
        code = data.get("inviteCode")
        if code is not None and not isinstance(code, str):
            raise ProtocolError("bad_message", "inviteCode must be a string")
        return Subscribe(valid_topic(data.get("topic")), epoch, since, code or None)
    if kind == "unsubscribe":
        return Unsubscribe(valid_topic(data.get("topic")))
    raise ProtocolError("bad_message", "unknown message type")


def frame(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def event_body(kind: str, session: dict[str, Any]) -> bytes:
    """What is published and retained for one event: `{"event": …, "session": …}`."""
    return orjson.dumps({"event": kind, "session": session})


def event_frame(topic: str, epoch: str, seq: int, body: bytes) -> bytes:
    """The wire frame for a published event, built from its body without parsing it again. It carries
    its `epoch` as well as its `seq`, so a client can resume from any frame it holds."""
    head = orjson.dumps({"type": "event", "topic": topic, "epoch": epoch, "seq": seq})
    return head[:-1] + b"," + body[1:]


def wire_text_frame(payload: bytes) -> bytes:
    """A complete, unmasked server-to-client WebSocket text frame (RFC 6455 §5.2) around `payload`.

    Built once per event: every subscriber's socket gets the very same bytes."""
    return _wire_frame(0x81, payload)


def wire_binary_frame(payload: bytes) -> bytes:
    """The same for a binary frame (the pad's y-websocket messages)."""
    return _wire_frame(0x82, payload)


def _wire_frame(first_byte: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((first_byte, n))
    elif n < 65536:
        header = bytes((first_byte, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first_byte, 127)) + n.to_bytes(8, "big")
    return header + payload


def snapshot_frame(topic: str, epoch: str, seq: int, state: Any, pad: dict[str, bool] | None = None) -> bytes:
    """A topic's snapshot; a session topic's also says who has the session's pad open (`pad`)."""
    key = "sessions" if topic == LOBBY else "session"
    message = {"type": "snapshot", "topic": topic, "epoch": epoch, "seq": seq, key: state}
    if pad is not None:
        message["pad"] = pad
    return frame(message)


def reset_frame(topic: str, reason: ResetReason) -> bytes:
    return frame({"type": "reset", "topic": topic, "reason": reason})


def error_frame(code: str, message: str) -> bytes:
    return frame({"type": "error", "code": code, "message": message})


PONG = frame({"type": "pong"})
AUTH_OK = frame({"type": "auth_ok"})
