"""The stack every benchmark runs against: SecantusDB, a private Redis, and `run_web.py` /
`run_worker.py` child processes configured for them, all stopped when the `with` block ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hireflow import embedded
from tests.fakes.clerk import SigningKey


def checkout(ref: str, dest: Path) -> Path:
    """This repository's code at commit `ref`, extracted into `dest` (to run beside the current code)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


class Stack:
    def __init__(self, tmp: str, *, db_on_disk: bool = False, server_root: Path = ROOT, **env: str) -> None:
        """`server_root`: the checkout whose `run_web.py`/`run_worker.py` run (another one, e.g. main before a
        change, to compare both in one sitting)."""
        self.tmp = tmp
        self.server_root = server_root
        self.key = SigningKey.generate()
        self._db_on_disk = db_on_disk
        self._extra_env = env
        self.children: list[subprocess.Popen[bytes]] = []
        self.roles: list[str] = []
        """What each child is (db, redis, web, worker), in the order of `children`."""
        self.db_url = self.redis_url = ""
        self.env: dict[str, str] = {}

    def __enter__(self) -> Stack:
        mongo_port, redis_port = embedded.free_port(), embedded.free_port()
        storage = str(Path(self.tmp) / f"db-{mongo_port}") if self._db_on_disk else ":memory:"
        self.children.append(embedded.start_mongo(port=mongo_port, storage_path=storage))
        self.children.append(embedded.start_redis(port=redis_port, directory=self.tmp))
        self.roles += ["db", "redis"]
        embedded.wait_for_port(mongo_port, self.children[0])
        embedded.wait_for_port(redis_port, self.children[1])
        self.db_url = f"mongodb://127.0.0.1:{mongo_port}/bench?directConnection=true"
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.env = {
            **os.environ,
            "NODE_ENV": "test",
            "DB_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "CLERK_JWT_KEY": self.key.public_pem,
            "CLIENT_URL": "http://localhost:5173",
            # One bench user creates and connects far beyond the per-user quotas: measure the server.
            "QUOTAS_ENABLED": "false",
            **self._extra_env,
        }
        return self

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each kind of child, its children included."""
        used: dict[str, float] = {}
        for role, child in zip(self.roles, self.children, strict=True):
            try:
                process = psutil.Process(child.pid)
                tree = [process, *process.children(recursive=True)]
                seconds = sum(sum(p.cpu_times()[:2]) for p in tree)
            except psutil.NoSuchProcess:
                continue
            used[role] = used.get(role, 0.0) + seconds
        return used

    def _spawn(
        self, script: str, env: dict[str, str], log: Path | None, root: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = log.open("wb") if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, str((root or self.server_root) / script)],
            env=env,
            cwd=self.tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.children.append(process)
        self.roles.append("web" if script == "run_web.py" else "worker")
        return process

    def web(
        self, *, log: Path | None = None, root: Path | None = None, **env: str
    ) -> tuple[int, subprocess.Popen[bytes]]:
        """Start a web process (`WEB_CONCURRENCY` in `env`: that many on one port; `root`: another
        checkout, whose `run_web.py` imports its own `hireflow`, to measure it in the same run); its port
        and process once it listens."""
        port = embedded.free_port()
        process = self._spawn("run_web.py", {**self.env, "PORT": str(port), **env}, log, root)
        embedded.wait_for_port(port, process)
        return port, process

    def worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("run_worker.py", self.env, None)

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for child in reversed(self.children):
            embedded.stop(child)
