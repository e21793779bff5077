"""WebSocket bytes for raw-socket clients (tests and bench/ws_fanout.py): the upgrade request, a
masked client text frame, and the server's frames parsed back. No test machinery imported here."""

from __future__ import annotations

import base64
import os


def upgrade_request(host: str, token: str) -> bytes:
    """`GET /api/ws` asking for a WebSocket, authenticated with a Bearer token."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /api/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame (clients must mask, RFC 6455 §5.3); short payloads only."""
    return client_frame(0x1, payload)


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """Any client frame (payloads under 64 KiB), masked unless told otherwise."""
    n = len(payload)
    length = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")
    head = bytes([(0x80 if fin else 0) | opcode]) + bytes([(0x80 if masked else 0) | length[0]]) + length[1:]
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked server frame in `data`."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, size, i = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if size == 126:
            size, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif size == 127:
            size, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        if i + size > len(data):
            break
        frames.append((opcode, data[i : i + size]))
        i += size
    return frames
