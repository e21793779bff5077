"""A Redis primary, one replica and three Sentinels on free ports, for failover tests.

Sentinel timings are low (down after 1 s, failover timeout 5 s) so that a promotion takes a few
seconds. The Sentinels run as `redis-server <config> --sentinel`, with the same binary as the rest
of the suite; where that binary cannot run a Sentinel the tests that need one are skipped.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hireflow import embedded

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
SETUP_TIMEOUT_S = 20.0


@dataclass
class SentinelCluster:
    directory: Path
    primary_port: int = 0
    replica_port: int = 0
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [embedded.redis_server_binary(), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[name] = process
        return process

    def _data_node(self, name: str, port: int, *extra: str) -> None:
        node_dir = self.directory / name
        node_dir.mkdir()
        args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        process = self._start(name, [*args, "--dir", str(node_dir), *extra])
        embedded.wait_for_port(port, process)

    def _sentinel(self, index: int, port: int) -> None:
        config = self.directory / f"sentinel{index}.conf"
        config.write_text(
            f"bind 127.0.0.1\nport {port}\ndir {self.directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        process = self._start(f"sentinel{index}", [str(config), "--sentinel"])
        try:
            embedded.wait_for_port(port, process, timeout_s=5)
        except RuntimeError as exc:
            output = (self.directory / f"sentinel{index}.log").read_text(errors="replace").strip()
            pytest.skip(f"{embedded.redis_server_binary()} cannot run in Sentinel mode ({exc}): {output[-300:]}")

    async def start(self) -> None:
        self.primary_port, self.replica_port = embedded.free_port(), embedded.free_port()
        self._data_node("primary", self.primary_port)
        self._data_node("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        for index in range(3):
            port = embedded.free_port()
            self.sentinel_ports.append(port)
            self._sentinel(index, port)
        await self._wait_until_discovered()

    async def _wait_until_discovered(self) -> None:
        """Every Sentinel knows the replica and the two other Sentinels (needed to vote a failover)."""
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        for port in self.sentinel_ports:
            async with Redis(host="127.0.0.1", port=port, decode_responses=True) as sentinel:
                while True:
                    replicas = await sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
                    others = await sentinel.execute_command("SENTINEL", "SENTINELS", SERVICE)
                    if replicas and len(others) == 2:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Sentinel {port} sees replicas {replicas!r}, sentinels {others!r}")
                    await asyncio.sleep(0.1)
        async with Redis(host="127.0.0.1", port=self.replica_port, decode_responses=True) as replica:
            while True:
                if (await replica.info("replication")).get("master_link_status") == "up":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica never synced with the primary")
                await asyncio.sleep(0.05)

    async def primary_address(self) -> tuple[str, int]:
        async with Redis(host="127.0.0.1", port=self.sentinel_ports[0], decode_responses=True) as sentinel:
            host, port = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return host, int(port)

    def kill_primary(self) -> None:
        process = self.processes["primary"]
        process.kill()  # SIGKILL: no goodbye to clients, replicas or Sentinels
        process.wait(5)

    def stop(self) -> None:
        for process in self.processes.values():
            embedded.stop(process)


@pytest.fixture
async def sentinel_cluster(tmp_path: Path) -> AsyncIterator[SentinelCluster]:
    cluster = SentinelCluster(tmp_path)
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.stop()
