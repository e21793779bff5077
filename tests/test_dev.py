"""`make dev` from a copy of the repository: up, usable with a minted token, down with nothing left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp

from hireflow import embedded
from tests.support.workers import eventually

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"


def copy_repo(dest: Path) -> None:
    """The tracked and untracked files (not .venv, not .hireflow), with their times, so that make sees
    the shared virtualenv as up to date and does not reinstall into it."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def processes_under(path: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def dev_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "CLERK_", "DB_", "REDIS_", "NODE_"))}
    env["PORT"] = str(port)
    return env


def start_dev(repo: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dev_env(port)
    with log.open("ab") as out:
        return subprocess.Popen(
            ["make", "dev", f"VENV={VENV}"],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def ctrl_c(dev: subprocess.Popen[bytes]) -> None:
    """What Ctrl-C in a terminal does: SIGINT to the foreground process group (make and the supervisor)."""
    os.killpg(dev.pid, signal.SIGINT)


def stopped_cleanly(dev: subprocess.Popen[bytes], log: Path) -> None:
    # make itself dies of the SIGINT (as in a terminal); the supervisor under it stops every child.
    assert dev.wait(30) in (0, 2, 130, -signal.SIGINT)
    output = log.read_text()
    assert "stopping" in output and "start-up failed" not in output and "stopping everything" not in output, output[
        -3000:
    ]


def token(repo: Path, name: str) -> str:
    return subprocess.run(
        ["make", "-s", "token", f"NAME={name}", f"VENV={VENV}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def second_make_dev(repo: Path, port: int) -> tuple[int, list[str]]:
    """`make dev` while one already runs in `repo`: (exit code, lines printed)."""
    done = subprocess.run(
        ["make", "-s", "dev", f"VENV={VENV}"], cwd=repo, env=dev_env(port), capture_output=True, text=True, timeout=60
    )
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()


async def _none_left(repo: Path) -> bool:
    return not processes_under(repo)


def test_token_command_has_help():
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "hireflow", "token", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0 and "usage: python -m hireflow token" in done.stdout and "NAME" in done.stdout
    assert not done.stderr


async def test_make_dev_end_to_end(tmp_path):
    repo = tmp_path / "hireflow"
    copy_repo(repo)
    port, log = embedded.free_port(), tmp_path / "dev.log"
    base = f"http://127.0.0.1:{port}"
    dev = start_dev(repo, port, log)
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(base + "/health/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout_s=60, every_s=0.3)
            returncode, said = second_make_dev(repo, port)
            assert returncode == 0 and len(said) == 1 and "already running" in said[0], said
            assert f":{port}" in said[0]
            alice, bob = token(repo, "alice"), token(repo, "bob")
            auth = {"Authorization": f"Bearer {alice}"}
            async with http.post(
                base + "/api/sessions", json={"problem": "Two Sum", "difficulty": "easy"}, headers=auth
            ) as resp:
                assert resp.status == 201
                session = (await resp.json())["session"]
            async with http.post(
                f"{base}/api/sessions/{session['_id']}/join", headers={"Authorization": f"Bearer {bob}"}
            ) as resp:
                assert resp.status == 200
            async with http.post(f"{base}/api/sessions/{session['_id']}/end", headers=auth) as resp:
                assert resp.status == 200

            (worker,) = [line for line in processes_under(repo) if "run_worker.py" in line]
            os.kill(int(worker.split(":")[0]), signal.SIGKILL)

            async def new_worker() -> bool:
                workers = [line for line in processes_under(repo) if "run_worker.py" in line]
                return bool(workers) and workers != [worker]

            await eventually(new_worker, timeout_s=10)
            assert dev.poll() is None, "a dead worker is replaced, the stack keeps running"
            assert "starting a new worker" in log.read_text()

        ctrl_c(dev)
        stopped_cleanly(dev, log)
        await eventually(lambda: _none_left(repo), timeout_s=10)
        assert (repo / ".hireflow" / "db").is_dir()

        dev = start_dev(repo, port, log)
        async with aiohttp.ClientSession() as http:
            await eventually(ready, timeout_s=60, every_s=0.3)
            async with http.get(base + "/api/sessions/my-recent", headers=auth) as resp:
                recent = (await resp.json())["sessions"]
        assert [s["_id"] for s in recent] == [session["_id"]], "the data survived a restart"
        ctrl_c(dev)
        stopped_cleanly(dev, log)
    finally:
        if dev.poll() is None:
            dev.kill()
        for line in processes_under(repo):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
