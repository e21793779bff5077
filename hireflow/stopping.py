"""Stopping background loops at shutdown: ask each to stop, give them a bounded time, cancel only then.

Cancelling a task inside a redis-py (or PyMongo) call can be swallowed, or turn into a retried error
or a hang; a loop asked to stop ends between calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

STOP_TIMEOUT_S = 5.0

Stoppable = tuple[Callable[[], None], "asyncio.Task[None]"]


async def stop_then_cancel(*loops: Stoppable, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Call each loop's `stop`, wait (together, at most `timeout_s`) for their tasks, then cancel them."""
    for stop, _task in loops:
        stop()
    tasks = {task for _stop, task in loops}
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s)  # neither raises nor cancels
    for task in tasks:
        task.cancel()
