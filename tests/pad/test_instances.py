"""Two web instances on one MongoDB and one Redis: replicas on both converge, and an instance that
missed relay messages (its Redis link cut) repairs from MongoDB."""

from __future__ import annotations

import random

from hireflow.web.app import create_app
from tests.conftest import Factory, make_settings, serve
from tests.support.pad import two_editors
from tests.support.proxy import TcpProxy
from tests.support.workers import eventually


async def _converged(*replicas) -> bool:
    texts = {r.text for r in replicas}
    return len(texts) == 1


async def test_replicas_on_two_instances_converge(client, second, factory: Factory):
    *_, a, b = await two_editors(client, second, factory)
    rng = random.Random(7)
    try:
        for i in range(60):
            who = a if i % 2 else b
            at = rng.randint(0, len(who.code))
            if at and rng.random() < 0.3:
                del who.code[at - 1 : at]
            else:
                who.code.insert(at, rng.choice("abcdef\n "))
        await eventually(lambda: _converged(a, b), timeout_s=10)
        assert a.doc.get_update() and a.text == b.text
    finally:
        await a.close()
        await b.close()


async def test_an_instance_cut_from_redis_repairs_from_mongodb(infra, db_name, fake_clerk, client, factory: Factory):
    proxy = await TcpProxy(infra.redis_port).start()
    overrides = {"rt_bus_heartbeat_s": 0.2}
    cut_off = await serve(
        create_app(
            make_settings(infra, db_name, *fake_clerk, redis_url=f"redis://127.0.0.1:{proxy.port}/0", **overrides)
        )
    )
    *_, a, b = await two_editors(client, cut_off, factory)
    try:
        a.code += "before;"
        await eventually(lambda: _converged(a, b), timeout_s=5)
        proxy.cut()
        a.code += "during-a;"  # stored, relayed by Redis, but B's subscription is down
        b.code += "during-b;"  # stored by B, whose publish fails
        await eventually(lambda: _is(a.text, "during-a", "during-b", negate_second=True), timeout_s=5)
        proxy.restore()
        await eventually(lambda: _both_have(a, b, "before;", "during-a;", "during-b;"), timeout_s=10)
        assert a.text == b.text
    finally:
        await a.close()
        await b.close()
        await cut_off.close()
        await proxy.close()


async def _is(text, present, absent, negate_second):
    return present in text and (absent not in text if negate_second else True)


async def _both_have(a, b, *parts) -> bool:
    return a.text == b.text and all(p in a.text for p in parts)
