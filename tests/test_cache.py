"""The read cache's version reads (coalesced, never older than the request) and its immutable values."""

from __future__ import annotations

import asyncio

import orjson

from hireflow import keys
from hireflow.cache import CacheVersions
from hireflow.services.session_views import CachedList, CachedSession


async def test_concurrent_reads_share_one_round_trip(redis):
    versions = CacheVersions(redis)
    try:
        await versions.read()  # seeds the counters
        before = versions.round_trips
        found = await asyncio.gather(*(versions.read() for _ in range(200)))
        assert len(set(found)) == 1
        assert versions.round_trips - before <= 2  # one MGET, two if the batch straddled a send
    finally:
        await versions.aclose()


async def test_a_read_that_starts_during_a_round_trip_waits_for_the_next_one(redis):
    """A write that completed before a request began must be seen, even if an MGET sent earlier (before
    that write) is still in flight: the new request never shares it."""
    versions = CacheVersions(redis)
    try:
        old = await versions.read()
        first = asyncio.create_task(versions.read())
        for _ in range(3):  # the first MGET is sent and waiting for its reply
            await asyncio.sleep(0)
        sent = versions.round_trips
        await redis.incr(keys.SESSIONS_VERSION)  # another instance's bump, completed now
        second = await versions.read()
        assert versions.round_trips == sent + 1
        assert second.sessions != old.sessions
        await first
    finally:
        await versions.aclose()


async def test_a_cancelled_waiter_does_not_cancel_the_read_the_others_share(redis):
    versions = CacheVersions(redis)
    try:
        await versions.read()
        leaving = asyncio.create_task(versions.read())
        staying = asyncio.create_task(versions.read())
        await asyncio.sleep(0)
        leaving.cancel()
        assert (await staying).sessions is not None
    finally:
        await versions.aclose()


def _session(clerk_host: str, clerk_guest: str | None, code: str | None = None) -> dict:
    user = lambda clerk: {"_id": "u" * 24, "name": clerk, "email": f"{clerk}@x.test", "clerkId": clerk}  # noqa: E731
    return {
        "_id": "a" * 24,
        "status": "active",
        "visibility": "private" if code else "public",
        "host": user(clerk_host),
        "participant": user(clerk_guest) if clerk_guest else None,
        **({"inviteCode": code} if code else {}),
    }


def test_cached_values_cannot_be_changed_through_what_readers_get():
    cached = CachedList([_session("host", "guest")])
    mine = cached.sessions()
    mine[0]["problem"] = "changed"
    mine[0]["host"]["email"] = "leak"
    assert "problem" not in cached.sessions()[0] and cached.sessions()[0]["host"]["email"] == "host@x.test"
    one = CachedSession(_session("host", None, code="secret"))
    one.session()["inviteCode"] = "other"
    assert orjson.loads(one.body_for("host"))["session"]["inviteCode"] == "secret"


def test_each_viewer_gets_their_body():
    listed = CachedList([_session("host", "guest")])
    public = orjson.loads(listed.body_for("stranger"))["sessions"][0]
    assert "email" not in public["host"] and "email" not in public["participant"]
    assert listed.body_for("stranger") is listed.body_for(None)  # built once, shared
    assert orjson.loads(listed.body_for("guest"))["sessions"][0]["host"]["email"] == "host@x.test"
    private = CachedSession(_session("host", "guest", code="secret"))
    assert "inviteCode" not in orjson.loads(private.body_for("guest"))["session"]
    assert orjson.loads(private.body_for("host"))["session"]["inviteCode"] == "secret"
    assert not private.readable_by("stranger", None) and private.readable_by("stranger", "secret")
