"""Closing WebSockets whose token expired: one sweep per process, not one timer per connection.

A connection may stay open until its latest token's expiry plus `ws_token_grace_s` (an `auth` frame
with a later token moves `Connection.expires_at`). Once a second every connection of the process is
checked: a few milliseconds for 40,000 sockets, where a timer per connection would cost a handle, a
loop timer and a context each (a few hundred bytes for every idle socket, and with Clerk's one-minute
tokens a reschedule per refresh). Closing is at most `interval_s` late, never early.
"""

from __future__ import annotations

import asyncio
import time

from hireflow.realtime import protocol
from hireflow.realtime.hub import Hub

SWEEP_INTERVAL_S = 1.0


def close_expired(hub: Hub, grace_s: float) -> int:
    """Close (4001) every connection whose token expired more than `grace_s` ago; how many."""
    cutoff = time.time() - grace_s
    expired = [conn for conn in hub.connections() if conn.expires_at <= cutoff and not conn.closed]
    for conn in expired:
        conn.close_soon(protocol.CLOSE_AUTH, "token expired")
    return len(expired)


async def close_expired_forever(hub: Hub, grace_s: float, interval_s: float = SWEEP_INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        close_expired(hub, grace_s)
