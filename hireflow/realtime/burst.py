"""Writing one event's wire frame to many idle sockets at once, on several cores.

A lobby event goes to every connected dashboard. Past a few thousand sockets the cost is nearly all
in the kernel: one `send` costs microseconds of TCP work, Python's share is small, and the `write`
syscall releases the GIL. So the subscribers of one event are split into contiguous ranges, written
by the event loop's thread and a few helper threads in parallel, each connection by exactly one
thread. The loop thread waits for the helpers before it returns to the loop, so nothing else runs
on the loop meanwhile: no socket is written, closed or reused behind a helper's back, and each
socket's byte order is what it would be with one thread.

Each connection decides for itself whether it can take the frame now (`Target.write_now`: in step,
nothing queued, nothing buffered in its transport). Those that cannot, or that took only part of
the frame, are handed back to the loop thread: the first go through the connection's queue as
usual, the second get the rest of the frame through their transport, which buffers it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

MIN_PER_THREAD = 256
"""Below this many sockets per thread, handing a range to a helper costs more than it saves."""


class Target(Protocol):
    fd: int

    @property
    def transport(self) -> asyncio.Transport | None: ...

    def write_now(self, topic: str, epoch: str, seq: int, wire: bytes) -> int: ...


T = TypeVar("T", bound=Target)


def raw_fd(transport: asyncio.BaseTransport | None) -> int:
    """The socket's file descriptor if frames may be written to it directly (plain TCP), else -1."""
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return sock.fileno() if sock is not None else -1


def write_fd(fd: int, wire: bytes) -> int:
    """Bytes of `wire` the socket took: 0 when it is full or broken (its transport then retries, or
    reports the error)."""
    try:
        return os.write(fd, wire)
    except OSError:
        return 0


def _write_range(
    targets: Sequence[Target], start: int, stop: int, topic: str, epoch: str, seq: int, wire: bytes
) -> tuple[list[int], list[tuple[int, int]]]:
    """Offer the frame to `targets[start:stop]`: (indexes that declined, (index, bytes) of short writes)."""
    declined: list[int] = []
    short: list[tuple[int, int]] = []
    size = len(wire)
    for i in range(start, stop):
        sent = targets[i].write_now(topic, epoch, seq, wire)
        if sent != size:
            if sent < 0:
                declined.append(i)
            else:
                short.append((i, sent))
    return declined, short


class BurstWriter:
    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="ws-burst") if threads > 1 else None

    def write(self, topic: str, epoch: str, seq: int, wire: bytes, targets: Sequence[T]) -> list[T]:
        """Write event `seq`'s frame to every target that can take it now; return those that cannot
        (blocks the loop thread until every socket was written)."""
        parts = 1 if self._pool is None else max(1, min(self._threads, len(targets) // MIN_PER_THREAD))
        bounds = [len(targets) * i // parts for i in range(parts + 1)]
        futures = [
            self._pool.submit(_write_range, targets, bounds[i], bounds[i + 1], topic, epoch, seq, wire)
            for i in range(1, parts)
            if self._pool is not None
        ]
        try:
            declined, short = _write_range(targets, bounds[0], bounds[1], topic, epoch, seq, wire)
        finally:
            # Whatever happened on this thread, no helper may still be writing once the loop resumes.
            wait(futures)
        failure: BaseException | None = None
        for future in futures:
            if future.exception() is not None:
                failure = failure or future.exception()
                continue
            more_declined, more_short = future.result()
            declined += more_declined
            short += more_short
        if failure is not None:
            raise failure
        for i, sent in short:
            transport = targets[i].transport
            if transport is not None and not transport.is_closing():
                transport.write(wire[sent:])
        return [targets[i] for i in declined]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
