"""Redis replies read alike from a decoding client (the web app's) and a bytes one (arq's, in workers)."""

from __future__ import annotations


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def data(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
