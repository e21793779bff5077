"""A fake Piston engine (engineer-man/piston, `api/src/api/v2.js`) over real HTTP.

It answers like Piston: 415 for a body that is not JSON, 400 `{message}` with Piston's wording for a
bad request or an unknown runtime, `{language, version, run, compile?}` for an execution (with
`run` = the compile stage's result when compilation fails), the runtime list, and package installs.
Instead of running code it reads one instruction per line of the file:

    print:TEXT      TEXT and a newline on stdout        eprint:TEXT   the same on stderr
    stdin           stdin copied to stdout               spam:N        N bytes of "x" on stdout
    sleep:MS        the program takes MS ms (over run_timeout: status TO, killed)
    exit:N          exit code N                          kill:SIG      killed by signal SIG
    compile-error   the compile stage fails (compiled languages only)

Faults: every execution takes `delay_s`; `fail(...)` injects status codes and slow answers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.faults import Fault, Faults

COMPILED = {"java"}


def default_runtimes() -> list[dict[str, Any]]:
    return [
        {
            "language": "javascript",
            "version": "18.15.0",
            "aliases": ["node-javascript", "node-js", "javascript", "js"],
            "runtime": "node",
        },
        {"language": "python", "version": "3.10.0", "aliases": ["py", "py3", "python3", "python3.10"]},
        {"language": "java", "version": "15.0.2", "aliases": []},
    ]


@dataclass
class FakePiston:
    runtimes: list[dict[str, Any]] = field(default_factory=default_runtimes)
    delay_s: float = 0.0
    """Every execution takes at least this long (the engine's own work)."""
    output_max_size: int | None = None
    """Piston's PISTON_OUTPUT_MAX_SIZE: a stream over it is cut, status OL/EL and SIGKILL. None: no cap."""
    max_timeout_ms: int = 3000
    faults: Faults = field(default_factory=Faults)
    executed: list[dict[str, Any]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an execution begins (for tests that kill a worker mid-run)."""

    def fail(self, method: str, path: str, **kwargs: Any) -> Fault:
        return self.faults.add(method, path, **kwargs)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_get("/api/v2/runtimes", self._runtimes)
        app.router.add_post("/api/v2/execute", self._execute)
        app.router.add_post("/api/v2/packages", self._install)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        if request.method == "POST" and not request.headers.get("Content-Type", "").startswith("application/json"):
            return web.json_response({"message": "requests must be of type application/json"}, status=415)
        fault = await self.faults.hit(request)
        if fault is not None:
            return web.Response(status=fault.status, body=fault.body, content_type="application/json")
        return await handler(request)

    async def _runtimes(self, _request: web.Request) -> web.Response:
        return web.json_response(self.runtimes)

    async def _install(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = {"node": "javascript"}.get(body.get("language"), body.get("language"))
        known = {rt["language"]: rt for rt in default_runtimes()}
        if name not in known:
            message = f"Requested package {body.get('language')}-{body.get('version')} does not exist"
            return web.json_response({"message": message}, status=404)
        if any(rt["language"] == name for rt in self.runtimes):
            return web.json_response({"message": "Already installed"}, status=500)  # as Piston answers
        self.runtimes.append(known[name])
        return web.json_response({"language": body["language"], "version": known[name]["version"]})

    def _runtime(self, language: str, version: str) -> dict[str, Any] | None:
        for rt in self.runtimes:
            named = language == rt["language"] or language in rt["aliases"]
            if named and (version in ("*", rt["version"]) or rt["version"].startswith(version.rstrip("x*.") + ".")):
                return rt
        return None

    async def _execute(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = self._check(body)
        if problem:
            return web.json_response({"message": problem}, status=400)
        rt = self._runtime(body["language"], body["version"])
        if rt is None:
            return web.json_response(
                {"message": f"{body['language']}-{body['version']} runtime is unknown"}, status=400
            )
        self.executed.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            await asyncio.sleep(self.delay_s)
            result = await self._run(rt, body)
        finally:
            self.in_flight -= 1
        return web.json_response(result)

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "language is required as a string"
        for name in ("language", "version"):
            if not body.get(name) or not isinstance(body[name], str):
                return f"{name} is required as a string"
        if not isinstance(body.get("files"), list):
            return "files is required as an array"
        for i, file in enumerate(body["files"]):
            if not isinstance(file, dict) or not isinstance(file.get("content"), str):
                return f"files[{i}].content is required as a string"
        for name, limit in (("compile_timeout", 10_000), ("run_timeout", self.max_timeout_ms)):
            value = body.get(name)
            if not value:
                continue
            if not isinstance(value, (int, float)):
                return f"If specified, {name} must be a number"
            if value > limit:
                return f"{name} cannot exceed the configured limit of {limit}"
        return None

    async def _run(self, rt: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        lines = body["files"][0]["content"].splitlines()
        result: dict[str, Any] = {"language": rt["language"], "version": rt["version"]}
        if rt["language"] in COMPILED:
            failed = "compile-error" in lines
            compile_stage = _stage(
                stderr="Main.java:1: error: ';' expected\n" if failed else "", code=1 if failed else 0
            )
            result["compile"] = compile_stage
            if failed:
                result["run"] = compile_stage
                return result
        result["run"] = await self._program(lines, body)
        return result

    async def _program(self, lines: list[str], body: dict[str, Any]) -> dict[str, Any]:
        stdout, stderr, code, signal, status = "", "", 0, None, None
        timeout_ms = body.get("run_timeout") or self.max_timeout_ms
        for line in lines:
            op, _, arg = line.partition(":")
            if op == "print":
                stdout += arg + "\n"
            elif op == "eprint":
                stderr += arg + "\n"
            elif op == "stdin":
                stdout += body.get("stdin", "")
            elif op == "spam":
                stdout += "x" * int(arg)
            elif op == "exit":
                code = int(arg)
            elif op == "kill":
                code, signal, status = None, arg, "SG"
            elif op == "sleep":
                if int(arg) > timeout_ms:
                    await asyncio.sleep(timeout_ms / 1000)
                    code, signal, status = None, "SIGKILL", "TO"
                    break
                await asyncio.sleep(int(arg) / 1000)
        cap = self.output_max_size
        if cap is not None and len(stdout) > cap:
            stdout, code, signal, status = stdout[:cap], None, "SIGKILL", "OL"
        if cap is not None and len(stderr) > cap:
            stderr, code, signal, status = stderr[:cap], None, "SIGKILL", "EL"
        return _stage(stdout=stdout, stderr=stderr, code=code, signal=signal, status=status)


def _stage(
    *, stdout: str = "", stderr: str = "", code: int | None = 0, signal: str | None = None, status: str | None = None
) -> dict[str, Any]:
    return {
        "stdout": stdout,
        "stderr": stderr,
        "output": stdout + stderr,
        "code": code,
        "signal": signal,
        "message": {"TO": "Time limit exceeded", "SG": f"Caught fatal signal {signal}"}.get(status or ""),
        "status": status,
        "memory": 8_000_000,
        "cpu_time": 10,
        "wall_time": 20,
    }
