"""`python -m hireflow piston-install`: the one command that installs the frontend's languages."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.piston import FakePiston

ROOT = Path(__file__).resolve().parents[2]


async def piston_install(url: str | None, cwd: Path, *languages: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PISTON_URL"}
    env["PYTHONPATH"] = str(ROOT)
    if url is not None:
        env["PISTON_URL"] = url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hireflow",
        "piston-install",
        *languages,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_installs_javascript_python_and_java_then_says_they_are_there(fake_piston, tmp_path):
    piston, url = fake_piston
    piston.runtimes.clear()
    code, out, _ = await piston_install(url, tmp_path)
    assert code == 0
    assert out.splitlines() == [
        "javascript: installed node 18.15.0",
        "python: installed python 3.10.0",
        "java: installed java 15.0.2",
    ]
    assert sorted(rt["language"] for rt in piston.runtimes) == ["java", "javascript", "python"]
    code, out, _ = await piston_install(url, tmp_path, "python")
    assert code == 0 and out.strip() == "python: already installed"


async def test_unknown_packages_and_a_missing_url_fail(fake_piston: tuple[FakePiston, str], tmp_path):
    code, _, err = await piston_install(fake_piston[1], tmp_path, "cobol")
    assert code == 1 and "Requested package cobol-* does not exist" in err
    code, _, err = await piston_install(None, tmp_path)
    assert code == 2 and "PISTON_URL is not set" in err
