"""Workers in tests: in-process arq workers on the test loop, and real `run_worker.py` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq import Worker

from hireflow.settings import Settings
from hireflow.workers.app import create_worker

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `Settings()` in a child process equal to `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "CLERK_", "DB_", "REDIS_"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    return env


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start in-process workers: `await worker()`; all are closed after the test."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(custom: Settings | None = None) -> Worker:
        w = create_worker(custom or settings, handle_signals=False)
        task = asyncio.create_task(w.async_run())
        started.append((w, task))
        return w

    yield start
    for w, task in started:
        await stop_worker(w, task)


async def stop_worker(w: Worker, task: asyncio.Task[None]) -> None:
    """Stop polling, cancel the jobs still running (arq's job runners then record them and finish), and
    let arq close its pool. Cancelling the runners themselves would make `close()` re-raise."""
    task.cancel()
    for job in list(w.job_tasks.values()):
        job.cancel()
    await asyncio.gather(task, *w.job_tasks.values(), *w.tasks.values(), return_exceptions=True)
    await w.close()


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_worker.py")],
            env=settings_env(settings),
            cwd=log_path.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes (`python run_worker.py`) with the test's settings."""
    started: list[WorkerProcess] = []

    def start(custom: Settings | None = None) -> WorkerProcess:
        p = WorkerProcess(custom or settings, tmp_path / f"worker{len(started)}.log")
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0, every_s: float = 0.05) -> Any:
    """Poll until `check()` returns something truthy; fail with its last value after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")
