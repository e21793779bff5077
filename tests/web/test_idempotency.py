"""A create is idempotent end to end: Idempotency-Key, and an insert whose reply was lost."""

from __future__ import annotations

from bson import ObjectId

from hireflow.web.app import create_app
from tests.conftest import FAST_WORKER, Factory, make_settings, serve
from tests.support.proxy import TcpProxy
from tests.support.workers import eventually

BODY = {"problem": "Two Sum", "difficulty": "easy"}
# The start of an `insert` command on the sessions collection, as BSON puts it on the wire.
INSERT_INTO_SESSIONS = b"\x02insert\x00\x09\x00\x00\x00sessions\x00"


async def test_the_same_key_answers_the_same_session(client, factory: Factory, mongo):
    host = await factory.user("host")
    headers = {**host.headers, "Idempotency-Key": "k-1"}
    first = await client.post("/api/sessions", json=BODY, headers=headers)
    again = await client.post("/api/sessions", json=BODY, headers=headers)
    assert first.status == again.status == 201
    assert (await first.json())["session"]["_id"] == (await again.json())["session"]["_id"]
    assert await mongo.sessions.count_documents({}) == 1


async def test_the_same_key_with_another_body_is_422(client, factory: Factory, mongo):
    host = await factory.user("host")
    headers = {**host.headers, "Idempotency-Key": "k-2"}
    assert (await client.post("/api/sessions", json=BODY, headers=headers)).status == 201
    resp = await client.post("/api/sessions", json={**BODY, "difficulty": "hard"}, headers=headers)
    assert resp.status == 422
    assert (await resp.json())["message"] == "Idempotency-Key was already used with a different request"
    assert await mongo.sessions.count_documents({}) == 1


async def test_keys_belong_to_their_user(client, factory: Factory, mongo):
    alice, bob = await factory.user("alice"), await factory.user("bob")
    for user in (alice, bob):
        resp = await client.post("/api/sessions", json=BODY, headers={**user.headers, "Idempotency-Key": "shared"})
        assert resp.status == 201
    assert await mongo.sessions.count_documents({}) == 2


async def test_a_bad_key_is_400(client, factory: Factory, mongo):
    host = await factory.user("host")
    for key in ("x" * 256, "tab\there"):
        resp = await client.post("/api/sessions", json=BODY, headers={**host.headers, "Idempotency-Key": key})
        assert resp.status == 400
        assert "Idempotency-Key" in (await resp.json())["message"]
    assert await mongo.sessions.count_documents({}) == 0


async def test_a_lost_reply_is_neither_a_ghost_nor_a_twin(
    infra, db_name, fake_clerk, redis, mongo, factory: Factory, worker, ws_client, client
):
    """The insert lands but its reply never comes back (503): the client's retry with the same key
    gets 201 and that one session; a subscriber on another instance hears of it from the outbox."""
    proxy = await TcpProxy(infra.mongo_port).start()
    settings = make_settings(infra, db_name, *fake_clerk, mongo_timeout_ms=1000, announce_after_s=0.5, **FAST_WORKER)
    settings = settings.model_copy(
        update={"db_url": f"mongodb://127.0.0.1:{proxy.port}/{db_name}?directConnection=true"}
    )
    app = await serve(create_app(settings))
    try:
        host = await factory.user("host")
        watcher = await ws_client(client, host.token)
        await watcher.subscribe("lobby")
        headers = {**host.headers, "Idempotency-Key": "retry-me"}
        proxy.lose_replies_after = INSERT_INTO_SESSIONS
        assert (await app.post("/api/sessions", json=BODY, headers=headers)).status == 503
        proxy.lose_replies_after, proxy.drop_replies = None, False
        stored = await mongo.sessions.find_one({})
        assert stored is not None and "outbox" in stored, "the insert landed, unannounced"

        resp = await app.post("/api/sessions", json=BODY, headers=headers)
        assert resp.status == 201
        assert (await resp.json())["session"]["_id"] == str(stored["_id"])
        assert await mongo.sessions.count_documents({}) == 1

        await worker()  # its reconciler drains the outbox (or its sync announces the newer state first)
        event = await watcher.recv_type("event", timeout_s=10)
        assert event["session"]["_id"] == str(stored["_id"]), "the stored session was announced"
        assert event["event"] in ("session.created", "session.updated")  # both carry the full session: upsert

        async def announced():
            doc = await mongo.sessions.find_one({"_id": stored["_id"]})
            return "outbox" not in doc

        await eventually(announced)
    finally:
        await app.close()
        await proxy.close()


async def test_a_repeated_announcement_is_dropped(client, factory: Factory, mongo, ws_client, redis):
    """The reconciler may announce a change its writer did publish (the outbox clear was lost):
    subscribers get it once, and an older change never overwrites a newer one."""
    from hireflow.web.appkeys import SESSIONS

    host = await factory.user("host")
    watcher = await ws_client(client, host.token)
    await watcher.subscribe("lobby")
    created = (await (await client.post("/api/sessions", json=BODY, headers=host.headers)).json())["session"]
    assert (await watcher.recv_type("event"))["event"] == "session.created"
    doc = await mongo.sessions.find_one({"_id": ObjectId(created["_id"])})
    doc["outbox"] = {"kind": "session.created", "cause": "created"}
    service = client.server.app[SESSIONS]
    await service.announce(doc)  # the same change again
    await client.post(f"/api/sessions/{created['_id']}/end", headers=host.headers)
    ended = await watcher.recv_type("event")
    assert ended["event"] == "session.ended", "the repeat was dropped; the next frame is the end"
    await service.announce(doc)  # an older change, late
    await watcher.send({"type": "ping"})
    assert (await watcher.recv())["type"] == "pong", "nothing was published for the late change"


async def test_an_unannounced_end_still_reaches_the_lobby(client, factory: Factory, mongo, ws_client, worker):
    """An end whose reply was lost (stored, never published) and then overtaken by the worker's teardown
    is still announced to the lobby as an end, not as a session-topic-only update."""
    from hireflow.store.sessions import SessionRepo

    host = await factory.user("host")
    watcher = await ws_client(client, host.token)
    await watcher.subscribe("lobby")
    created = (await (await client.post("/api/sessions", json=BODY, headers=host.headers)).json())["session"]
    assert (await watcher.recv_type("event"))["event"] == "session.created"
    await SessionRepo(mongo).complete(ObjectId(created["_id"]), host.doc["_id"])  # stored, not announced
    await worker()
    event = await watcher.recv_type("event", timeout_s=15)
    assert (event["event"], event["session"]["_id"]) == ("session.ended", created["_id"])


async def test_announced_changes_have_their_outboxes_cleared_together(infra, db_name, fake_clerk, factory, mongo):
    """The clears go out in bulk after the answers; closing the app writes what is still pending."""
    import asyncio

    app_client = await serve(create_app(make_settings(infra, db_name, *fake_clerk, quotas_enabled=False)))
    try:
        hosts = [await factory.user(f"h{i}") for i in range(12)]
        answers = await asyncio.gather(
            *(app_client.post("/api/sessions", json=BODY, headers=host.headers) for host in hosts)
        )
        assert all(a.status == 201 for a in answers)
    finally:
        await app_client.close()  # no wait: the app's shutdown flushes the pending clears
    assert await mongo.sessions.count_documents({"outbox": {"$exists": True}}) == 0
    assert await mongo.sessions.count_documents({"announcedEv": 1}) == 12
