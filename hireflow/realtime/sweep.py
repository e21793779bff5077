"""Once a second, one pass over every connection of the process: token expiry and liveness.

Neither needs a timer per connection (a handle, a loop timer and a context each: a few hundred bytes
for every idle socket, and with Clerk's one-minute tokens a reschedule per refresh); one pass costs
a few milliseconds for 20,000 sockets. Both act at most `SWEEP_INTERVAL_S` late, never early.

- Expiry: a connection may stay open until its latest token's expiry plus `ws_token_grace_s` (an
  `auth` frame with a later token moves `Connection.expires_at`); then it is closed with 4001.
- Liveness: a socket from which nothing was heard for `heartbeat_s` is pinged; if still nothing came
  `heartbeat_s / 2` after the ping, the peer is taken as gone and the connection dropped (as
  aiohttp's `heartbeat` does, without a close frame: nobody would read it).
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


def check_liveness(hub: Hub, heartbeat_s: float) -> int:
    """Ping the sockets silent for `heartbeat_s`, drop those that did not answer; how many dropped."""
    now = time.monotonic()
    quiet_since, answer_by = now - heartbeat_s, now - heartbeat_s / 2
    dead = []
    for conn in hub.connections():
        link = conn.ws
        if link.last_heard_s > quiet_since:
            continue
        if link.ping_sent_s > link.last_heard_s:
            if link.ping_sent_s <= answer_by:
                dead.append(link)
        else:
            link.ping()
    for link in dead:
        link.abort()
    return len(dead)


async def sweep_forever(hub: Hub, *, grace_s: float, heartbeat_s: float, interval_s: float = SWEEP_INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        close_expired(hub, grace_s)
        check_liveness(hub, heartbeat_s)
