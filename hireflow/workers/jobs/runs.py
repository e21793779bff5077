"""`execute_run`: run a queued code run on Piston and record what came of it; and the reconciler's part.

The job claims the run (so a duplicate job, or a second worker, does nothing), calls the engine
once, and ends the run whatever happens: the engine's answer becomes `succeeded`, `failed` or
`timed_out`; a request it refuses, `rejected`; an engine that is down, too slow or answers nonsense,
`failed` with the reason. Only a worker that dies mid-run leaves it `running`: the reconciler queues
such a run again once, then fails it (`reconcile_runs`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from hireflow.piston.client import Limits, PistonRejected, PistonUnavailable
from hireflow.services.run_limits import run_job_timeout_s, stale_after_s
from hireflow.settings import Settings
from hireflow.store.runs import RunStatus
from hireflow.store.sessions import parse_id
from hireflow.timeutil import utcnow
from hireflow.workers.deps import WorkerDeps, deps

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 64 * 1024
"""Each of stdout and stderr is kept up to this size (on a UTF-8 boundary); `truncated` says when cut."""

Outcome = tuple[RunStatus, dict[str, Any]]


async def execute_run(ctx: dict[str, Any], *, run_id: str) -> str:
    d = deps(ctx)
    # A safety net: the engine's client times out first, and ends the run with that reason.
    async with asyncio.timeout(run_job_timeout_s(d.settings)):
        return await _execute(d, run_id)


async def _execute(d: WorkerDeps, run_id: str) -> str:
    oid = parse_id(run_id)
    if oid is None or d.runs is None:
        return "invalid id"
    claimed = await d.runs.start(oid)
    if claimed is None:
        return "not queued"
    started = time.perf_counter()
    status: RunStatus
    fields: dict[str, Any]
    if d.piston is None:
        status, fields = "failed", {"error": "Code execution is not configured"}
    else:
        try:
            answer = await d.piston.execute(
                language=claimed["language"],
                version=claimed["version"],
                code=claimed["code"],
                stdin=claimed.get("stdin", ""),
                limits=limits(d.settings),
            )
            status, fields = outcome(answer)
        except PistonRejected as exc:
            status, fields = "rejected", {"error": exc.reason}
        except PistonUnavailable as exc:
            status, fields = "failed", {"error": exc.reason}
    fields["durationMs"] = round((time.perf_counter() - started) * 1000)
    done = await d.runs.finish(claimed, status, fields)
    return status if done is not None else "taken over"


def limits(settings: Settings) -> Limits:
    return Limits(
        compile_timeout_ms=settings.run_compile_timeout_ms,
        run_timeout_ms=settings.run_run_timeout_ms,
        compile_memory_limit_bytes=settings.run_compile_memory_limit_bytes,
        run_memory_limit_bytes=settings.run_run_memory_limit_bytes,
    )


def outcome(answer: dict[str, Any]) -> Outcome:
    """A run's status and fields from Piston's answer. `run` is the compile stage's result when
    compilation failed; its `status` is isolate's (`TO` time out, `SG` signal, `RE` runtime error,
    `XX` internal error) or Piston's (`OL`/`EL`: stdout/stderr over the engine's limit, then killed)."""
    stage: dict[str, Any] = answer["run"]
    compile_stage = answer.get("compile")
    compile_failed = isinstance(compile_stage, dict) and compile_stage.get("code") != 0  # Piston's own test
    stdout, cut_out = cap(stage.get("stdout"))
    stderr, cut_err = cap(stage.get("stderr"))
    code, signal, engine_status = stage.get("code"), stage.get("signal"), stage.get("status")
    fields: dict[str, Any] = {
        "stdout": stdout,
        "stderr": stderr,
        "truncated": cut_out or cut_err or engine_status in ("OL", "EL"),
        "exitCode": code if isinstance(code, int) else None,
        "signal": signal if isinstance(signal, str) else None,
        "error": None,
    }
    for key in ("language", "version"):  # what the engine resolved an alias or `*` to
        if isinstance(answer.get(key), str):
            fields[key] = answer[key]
    what = "Compilation" if compile_failed else "The program"
    if engine_status == "TO":
        return "timed_out", {**fields, "error": f"{what} ran out of time"}
    if engine_status == "XX":
        return "failed", {**fields, "error": f"The code execution engine failed: {stage.get('message') or 'unknown'}"}
    if engine_status in ("OL", "EL"):
        return "failed", {**fields, "error": f"{what} wrote more output than the engine allows"}
    if code == 0 and fields["signal"] is None and not compile_failed:
        return "succeeded", fields
    if fields["signal"] is not None:
        return "failed", {**fields, "error": f"{what} was killed ({fields['signal']})"}
    return "failed", {**fields, "error": "Compilation failed" if compile_failed else None}


def cap(text: object) -> tuple[str, bool]:
    """`text` cut to MAX_OUTPUT_BYTES of UTF-8 (never inside a character), and whether it was cut."""
    if not isinstance(text, str):
        return "", False
    if len(text) <= MAX_OUTPUT_BYTES // 4:
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_OUTPUT_BYTES:
        return text, False
    return raw[:MAX_OUTPUT_BYTES].decode("utf-8", "ignore"), True


async def reconcile_runs(d: WorkerDeps) -> int:
    """Retry once, or fail, every run left queued or running past `stale_after_s`."""
    if d.runs is None or d.run_repo is None:
        return 0
    cutoff = utcnow() - timedelta(seconds=stale_after_s(d.settings))
    stale = await d.run_repo.stale(cutoff)
    for doc in stale:
        what = await d.runs.retry_or_fail(doc)
        log.info("reconciler: run %s left %s: %s", doc["_id"], doc["status"], what)
    return len(stale)
