"""REDIS_URL → clients: both URL forms, arq's settings, and a malformed Sentinel URL refused at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio.sentinel import SentinelConnectionPool

from hireflow import keys, redis_conn
from hireflow.settings import Settings
from tests.support.sentinel import SentinelCluster


def test_a_sentinel_url_is_parsed():
    target = redis_conn.parse_sentinel_url("redis+sentinel://:s%40cret@h1:26380,h2,10.0.0.3:26381/mymaster/2")
    assert target == redis_conn.SentinelTarget(
        sentinels=(("h1", 26380), ("h2", 26379), ("10.0.0.3", 26381)),
        service="mymaster",
        db=2,
        username=None,
        password="s@cret",
    )
    assert redis_conn.parse_sentinel_url("redis+sentinel://h1:26379/svc") == redis_conn.SentinelTarget(
        (("h1", 26379),), "svc"
    )
    assert redis_conn.parse_sentinel_url("redis://localhost:6379/0") is None


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",
        "redis+sentinel://h1:26379/svc/x",
        "redis+sentinel://h1:port/svc",
        "redis+sentinel:///svc",
    ],
)
def test_a_malformed_sentinel_url_stops_start_up(url):
    with pytest.raises(ValidationError, match="Sentinel"):
        Settings(_env_file=None, redis_url=url)  # type: ignore[call-arg]


def test_arq_settings_for_both_forms():
    plain = redis_conn.arq_settings("redis://:pw@cache:6380/3")
    assert (plain.host, plain.port, plain.database, plain.password, plain.sentinel) == ("cache", 6380, 3, "pw", False)
    ha = redis_conn.arq_settings("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/1")
    assert ha.sentinel and ha.sentinel_master == "mymaster"
    assert (ha.host, ha.database, ha.password) == ([("h1", 26379), ("h2", 26379)], 1, "pw")


async def test_sentinel_clients_reach_the_primary(sentinel_cluster: SentinelCluster):
    conns = redis_conn.clients(sentinel_cluster.url, timeout_s=2.0)
    try:
        assert isinstance(conns.main.connection_pool, SentinelConnectionPool)
        await conns.main.set("hireflow:test", "yes")
        assert await conns.main.get("hireflow:test") == "yes"  # decoded
        assert await conns.arq.get("hireflow:test") == b"yes"  # arq's client keeps bytes
        assert conns.arq.default_queue_name == keys.QUEUE
        role = await conns.main.execute_command("ROLE")
        assert role[0] == "master"
    finally:
        await conns.aclose()
