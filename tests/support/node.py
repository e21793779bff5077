"""Node and the npm packages of the real JavaScript client (yjs, y-websocket, ws), installed once into a
cache folder outside the repository; tests that need them skip only when npm itself is missing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

CACHE = Path(os.environ.get("HIREFLOW_NODE_CACHE", Path.home() / ".cache" / "hireflow-node"))
PACKAGES = ["yjs@13", "y-websocket@3", "ws@8"]
SCRIPT = Path(__file__).resolve().parents[1] / "pad" / "js" / "edit.cjs"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("Node and npm are needed for the JavaScript y-websocket client test (not found on PATH)")
    modules = CACHE / "node_modules"
    if not all((modules / name.rsplit("@", 1)[0] / "package.json").exists() for name in PACKAGES):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent", *PACKAGES],
            check=True,
            timeout=300,
        )
    return modules


class NodeClient:
    """One `edit.cjs` process; `latest` is its last progress report."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.latest: dict[str, Any] = {}
        self._reader = asyncio.create_task(self._read())
        self._final: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, modules: Path, server_url: str, room: str, token: str, edits: int, seed: int) -> NodeClient:
        env = {**os.environ, "NODE_PATH": str(modules)}
        proc = await asyncio.create_subprocess_exec(
            "node", str(SCRIPT), server_url, room, token, str(edits), str(seed),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            data = orjson.loads(line)
            if "update" in data:
                self._final.set_result(data)
            else:
                self.latest = data

    @property
    def state_vector(self) -> bytes:
        return base64.b64decode(self.latest.get("sv", ""))

    async def dump(self) -> tuple[bytes, str]:
        """Its full state (Yjs-encoded update) and text, then it exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"dump\n")
        await self.proc.stdin.drain()
        final = await asyncio.wait_for(self._final, 10)
        return base64.b64decode(final["update"]), final["text"]

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
