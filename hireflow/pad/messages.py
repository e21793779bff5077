"""The y-websocket wire format, read strictly: every frame is one message, fully consumed.

The encoding itself is pycrdt's (`create_*_message`, `Decoder`); this module only checks that a frame
from a client is well formed before anything looks at its payload, so that a malformed one is refused
with 1007 instead of half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pycrdt import Decoder, YMessageType, YSyncMessageType, create_awareness_message, get_state, write_message

QUERY_AWARENESS = 3
"""y-websocket's `messageQueryAwareness`: the client asks for every known presence state."""
AUTH = 2
"""y-websocket's `messageAuth` (server → client only; a client sending it is ignored)."""

EMPTY_UPDATE = b"\x00\x00"


class Kind(Enum):
    SYNC_STEP1 = "sync_step1"
    SYNC_STEP2 = "sync_step2"  # a Yjs update: what the server lacks (always with the whole delete set)
    UPDATE = "update"
    AWARENESS = "awareness"
    QUERY_AWARENESS = "query_awareness"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Message:
    kind: Kind
    payload: bytes = b""


class MalformedMessage(Exception):
    """The frame is not a well-formed y-websocket message (the socket is closed with 1007)."""


def _read_bytes(decoder: Decoder) -> bytes:
    try:
        length = decoder.read_var_uint()
    except (IndexError, RuntimeError) as exc:
        raise MalformedMessage("truncated length") from exc
    if length > decoder.length:
        raise MalformedMessage("payload shorter than its length")
    data = decoder.stream[decoder.i0 : decoder.i0 + length]
    decoder.i0 += length
    decoder.length -= length
    return bytes(data)


def parse(frame: bytes) -> Message:
    """Classify one binary frame from a client; raise MalformedMessage when it is not valid."""
    if not frame:
        raise MalformedMessage("empty frame")
    kind = frame[0]
    decoder = Decoder(frame[1:])
    if kind == YMessageType.SYNC:
        try:
            sub = decoder.read_var_uint()
        except (IndexError, RuntimeError) as exc:
            raise MalformedMessage("truncated sync message") from exc
        payload = _read_bytes(decoder)
        if sub == YSyncMessageType.SYNC_STEP1:
            message = Message(Kind.SYNC_STEP1, payload)
        elif sub in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
            validate_update(payload)
            message = Message(Kind.SYNC_STEP2 if sub == YSyncMessageType.SYNC_STEP2 else Kind.UPDATE, payload)
        else:
            raise MalformedMessage(f"unknown sync message type {sub}")
    elif kind == YMessageType.AWARENESS:
        message = Message(Kind.AWARENESS, _read_bytes(decoder))
    elif kind == QUERY_AWARENESS:
        return Message(Kind.QUERY_AWARENESS)
    elif kind == AUTH:
        return Message(Kind.IGNORED)
    else:
        raise MalformedMessage(f"unknown message type {kind}")
    if decoder.length != 0:
        raise MalformedMessage("trailing bytes after the message")
    return message


def validate_update(update: bytes) -> None:
    """Decode the update (Yrs rejects anything that is not a valid update) without applying it:
    `get_state` decodes it whole, as applying it would, for a twentieth of the cost of applying it to
    a scratch document (the two agreed on 20,000 randomly corrupted updates)."""
    if update == EMPTY_UPDATE:
        return
    try:
        get_state(update)
    except (ValueError, RuntimeError) as exc:
        raise MalformedMessage(f"invalid update: {exc}") from exc


def awareness_frame(update: bytes) -> bytes:
    """The y-websocket frame carrying an awareness update."""
    return create_awareness_message(update)


def read_awareness(frame: bytes) -> bytes:
    """The awareness update inside a frame built by `awareness_frame`."""
    message = parse(frame)
    if message.kind is not Kind.AWARENESS:
        raise MalformedMessage("not an awareness frame")
    return message.payload


def sync_step2(update: bytes) -> bytes:
    """The reply to a client's sync step 1: what it lacks (pycrdt keeps its own helper private)."""
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)
