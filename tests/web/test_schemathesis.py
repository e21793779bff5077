"""schemathesis against a live server (its own process), with a valid token and a fixed seed:
no 5xx, and every response valid against the OpenAPI document."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from hireflow import embedded
from tests.conftest import Factory
from tests.support.workers import settings_env

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def _start_web(env: dict[str, str], cwd: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_web.py")], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.mark.timeout(240)
@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed (pip install -e '.[dev]')")
async def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    piston_settings, factory: Factory, tmp_path
):
    user = await factory.user("fuzzer")
    port = embedded.free_port()
    # With code runs configured (on the Piston fake): without, POST .../runs is a documented 503.
    env = {**settings_env(piston_settings), "PORT": str(port), "CLERK_WEBHOOK_SECRET": "whsec_" + "A" * 32}
    log = (tmp_path / "web.log").open("wb")
    server = _start_web(env, tmp_path, log)
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, server)
        run = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"http://127.0.0.1:{port}/api/openapi.json",
            "-H",
            f"Authorization: Bearer {user.token}",
            "--seed",
            "1",
            "--max-examples",
            "25",
            "--checks",
            "all",
            # 400s for business rules (joining your own session, ending twice) are correct answers to
            # schema-valid requests; every other check stays on.
            "--exclude-checks",
            "positive_data_acceptance",
            "--request-timeout",
            "10",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await run.communicate()
        assert run.returncode == 0, output.decode(errors="replace")[-8000:]
    finally:
        await asyncio.to_thread(embedded.stop, server)
        log.close()
    # aiohttp itself logs the requests its HTTP parser refuses with 400 (schemathesis probes a NUL in a
    # header); what must never appear is our middleware's record of an unexpected error (a 500).
    assert "unexpected error" not in (tmp_path / "web.log").read_text()
