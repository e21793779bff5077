"""A small client of Piston's v2 HTTP API (`api/src/api/v2.js` in engineer-man/piston).

`POST /api/v2/execute` takes `{language, version, files: [{name?, content}], stdin, args,
compile_timeout, run_timeout, compile_memory_limit, run_memory_limit}` and answers
`{language, version, run: {stdout, stderr, output, code, signal, status, message, …}, compile?: {…}}`
(when compilation fails, `run` is the compile stage's result). A request it refuses gets a 4xx with
`{message}`. `GET /api/v2/runtimes` lists `[{language, version, aliases, runtime?}]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from hireflow.settings import Settings

# Piston's own per-stream cap is PISTON_OUTPUT_MAX_SIZE; this only bounds what we buffer from it.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
INSTALL_TIMEOUT_S = 600.0


class PistonError(Exception):
    """The engine did not run the code; `reason` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PistonUnavailable(PistonError):
    """Unreachable, too slow, a 5xx or an answer that is not Piston's: the engine's fault, not the code's."""


class PistonRejected(PistonError):
    """A 4xx: the engine refused this request (unknown runtime, a limit above its own…)."""


@dataclass(frozen=True)
class Runtime:
    language: str
    version: str
    aliases: tuple[str, ...]

    def json(self) -> dict[str, Any]:
        return {"language": self.language, "version": self.version, "aliases": list(self.aliases)}


@dataclass(frozen=True)
class Limits:
    compile_timeout_ms: int
    run_timeout_ms: int
    compile_memory_limit_bytes: int
    run_memory_limit_bytes: int


class PistonClient:
    """One `aiohttp.ClientSession` per process; create it inside the running loop, close it with `aclose`."""

    def __init__(self, base_url: str, *, timeout_s: float, runtimes_timeout_s: float = 5.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._runtimes_timeout = aiohttp.ClientTimeout(total=min(timeout_s, runtimes_timeout_s))
        self._http = aiohttp.ClientSession(json_serialize=lambda o: orjson.dumps(o).decode())

    async def aclose(self) -> None:
        await self._http.close()

    async def runtimes(self) -> list[Runtime]:
        data = await self._call("GET", "/api/v2/runtimes", None, self._runtimes_timeout)
        if not isinstance(data, list):
            raise PistonUnavailable("The code execution engine sent an unexpected answer")
        found = []
        for item in data:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("language"), str) and isinstance(item.get("version"), str):
                aliases = tuple(a for a in item.get("aliases") or () if isinstance(a, str))
                found.append(Runtime(item["language"], item["version"], aliases))
        return found

    async def execute(self, *, language: str, version: str, code: str, stdin: str, limits: Limits) -> dict[str, Any]:
        body = {
            "language": language,
            "version": version,
            "files": [{"content": code}],
            "stdin": stdin,
            "args": [],
            "compile_timeout": limits.compile_timeout_ms,
            "run_timeout": limits.run_timeout_ms,
            "compile_memory_limit": limits.compile_memory_limit_bytes,
            "run_memory_limit": limits.run_memory_limit_bytes,
        }
        data = await self._call("POST", "/api/v2/execute", body, self._timeout)
        if not isinstance(data, dict) or not isinstance(data.get("run"), dict):
            raise PistonUnavailable("The code execution engine sent an unexpected answer")
        return data

    async def install(self, language: str, version: str = "*") -> dict[str, Any]:
        """Install a package (`POST /api/v2/packages`); the engine downloads it from its repository."""
        body = {"language": language, "version": version}
        data = await self._call("POST", "/api/v2/packages", body, aiohttp.ClientTimeout(total=INSTALL_TIMEOUT_S))
        return data if isinstance(data, dict) else {}

    async def _call(self, method: str, path: str, body: Any, limit: aiohttp.ClientTimeout) -> Any:
        try:
            async with self._http.request(method, self._base + path, json=body, timeout=limit) as resp:
                raw = await _read_bounded(resp)
                status = resp.status
        except TimeoutError as exc:
            raise PistonUnavailable("The code execution engine did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise PistonUnavailable("The code execution engine could not be reached") from exc
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        message = data.get("message") if isinstance(data, dict) and status >= 300 else None
        if 400 <= status < 500:
            raise PistonRejected(str(message) if message else f"The code execution engine refused the run ({status})")
        if status >= 300 or data is None:
            detail = f": {message}" if message else ""
            raise PistonUnavailable(f"The code execution engine failed ({status}){detail}")
        return data


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise PistonUnavailable("The code execution engine sent more output than accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def piston_client(settings: Settings) -> PistonClient | None:
    """The engine's client, or None when PISTON_URL is not set (code runs are then refused with 503)."""
    if not settings.piston_url:
        return None
    return PistonClient(settings.piston_url, timeout_s=settings.piston_timeout_s)
