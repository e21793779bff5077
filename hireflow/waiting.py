"""Waiting for a dependency at start-up: retry with backoff, say what is awaited, give up at a deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.25
MAX_DELAY_S = 5.0
TRANSIENT: tuple[type[BaseException], ...] = (PyMongoError, RedisError, OSError, TimeoutError)


class DependencyTimeout(RuntimeError):
    """A dependency did not answer within the start-up timeout."""


async def wait_for(what: str, attempt: Callable[[], Awaitable[T]], *, timeout_s: float) -> T:
    """`await attempt()` until it succeeds; a transient error is logged and retried with exponential
    backoff (0.25 s doubling to 5 s) until `timeout_s` has passed, then DependencyTimeout."""
    deadline = time.monotonic() + timeout_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return await attempt()
        except TRANSIENT as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DependencyTimeout(f"{what} did not answer within {timeout_s:g}s: {exc!r}") from exc
            pause = min(delay, left)
            log.warning("waiting for %s (%r); retrying in %.2fs", what, exc, pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, MAX_DELAY_S)
