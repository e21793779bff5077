"""The pub/sub subscriber ends when asked to (at shutdown), without being cancelled: connected or
while it keeps failing to reconnect."""

from __future__ import annotations

import asyncio
import socket

from redis.asyncio import Redis

from hireflow.pubsub import Subscriber


async def _nothing(*_args: object) -> None:
    return None


async def test_a_connected_subscriber_stops_when_asked(redis):
    heard = asyncio.Event()

    async def on_message(_channel: str, _data: bytes) -> None:
        heard.set()

    subscriber = Subscriber(redis, ("test:stop",), heartbeat_s=5.0, name="test")
    running = asyncio.create_task(subscriber.run(on_message, _nothing))
    assert await subscriber.wait_connected(5.0)
    await redis.publish("test:stop", "one")
    await asyncio.wait_for(heard.wait(), 5.0)
    subscriber.stop()
    await asyncio.wait_for(running, 2.0)  # returned by itself: wait_for would cancel it only on time-out
    assert not running.cancelled() and not subscriber.connected


async def test_a_subscriber_that_cannot_connect_stops_when_asked():
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    redis = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    subscriber = Subscriber(redis, ("test:stop",), heartbeat_s=5.0, name="test")
    running = asyncio.create_task(subscriber.run(_nothing, _nothing))
    await asyncio.sleep(1.0)  # a couple of failed attempts
    subscriber.stop()
    await asyncio.wait_for(running, 2.0)
    assert not running.cancelled()
    await redis.aclose()
