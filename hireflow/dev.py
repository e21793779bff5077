"""`make dev`: the whole backend from a fresh clone, with no accounts anywhere.

One supervisor starts, each as a child process with prefixed, coloured log lines and each only once
the previous one is healthy: the embedded document DB (SecantusDB, data in `.hireflow/db`), an
embedded Redis, the web server and one worker. Auth uses a local key pair (`hireflow/devkeys.py`);
Stream without keys marks sessions `disabled`. Ctrl-C or SIGTERM stops everything; a child that dies
is reported and the supervisor exits non-zero.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO

from hireflow import embedded
from hireflow.devkeys import STATE_DIR, ensure_key_pair
from hireflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = STATE_DIR / "dev.json"
LOCK_FILE = STATE_DIR / "dev.lock"
COLOURS = {"mongo": 33, "redis": 31, "web": 32, "worker": 36}
START_TIMEOUT_S = 60.0
WORKER_RESTARTS, WORKER_RESTART_WINDOW_S = 3, 60.0
"""A worker that dies is started again, up to this many times a minute (more means it cannot start)."""


class Supervisor:
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        colour = COLOURS.get(name, 37)
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            sys.stdout.write(f"\033[{colour}m{name:>6} |\033[0m {line}\n")
            sys.stdout.flush()

    def start(self, name: str, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.children[name] = process
        if process.stdout is not None:
            threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True).start()
        return process

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.start(name, process)

    def dead(self) -> str | None:
        for name, process in self.children.items():
            if process.poll() is not None:
                return f"{name} exited with code {process.returncode}"
        return None

    def stop_all(self) -> None:
        self.stopping = True
        for name in reversed(list(self.children)):
            embedded.stop(self.children[name])


def _wait_http_ok(url: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        problem = supervisor.dead()
        if problem:
            raise RuntimeError(problem)
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {START_TIMEOUT_S:.0f}s")


def _hold_lock() -> IO[str] | None:
    """The lock that makes this the one `make dev` of this checkout (released when the process dies,
    however it dies); None when another one holds it. Without it a second supervisor would get as far
    as the embedded DB, which refuses a data directory already in use with a long traceback."""
    lock = LOCK_FILE.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def _already_running() -> str:
    try:
        state = json.loads(STATE_FILE.read_text())
        where = f" at http://127.0.0.1:{state['port']} (pid {state['pid']})"
    except (OSError, ValueError, KeyError):
        where = ""
    return f"HireFlow is already running{where} from this directory: stop it first (Ctrl-C in its terminal)."


def main() -> int:
    settings = Settings()
    if settings.node_env == "production":
        print("make dev is for development; NODE_ENV=production is set", file=sys.stderr)
        return 2
    STATE_DIR.mkdir(exist_ok=True)
    lock = _hold_lock()
    if lock is None:
        print(_already_running(), file=sys.stderr)
        return 0  # what was asked for, a running backend, is there
    supervisor = Supervisor()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = {k: v for k, v in os.environ.items()}
    try:
        db_url = settings.db_url
        if not db_url:
            port = embedded.free_port()
            mongo = supervisor.start(
                "mongo",
                embedded.start_mongo(port=port, storage_path=str((STATE_DIR / "db").resolve()), log=subprocess.PIPE),
            )
            embedded.wait_for_port(port, mongo, timeout_s=START_TIMEOUT_S)
            db_url = f"mongodb://127.0.0.1:{port}/hireflow?directConnection=true"
        redis_url = settings.redis_url
        if not redis_url:
            port = embedded.free_port()
            redis = supervisor.start(
                "redis",
                embedded.start_redis(port=port, directory=str((STATE_DIR / "redis").resolve()), log=subprocess.PIPE),
            )
            embedded.wait_for_port(port, redis, timeout_s=START_TIMEOUT_S)
            redis_url = f"redis://127.0.0.1:{port}/0"
        env.update(DB_URL=db_url, REDIS_URL=redis_url, PORT=str(settings.port), PYTHONUNBUFFERED="1")
        if not settings.clerk_jwt_key and not settings.clerk_secret_key:
            env["CLERK_JWT_KEY"] = ensure_key_pair()
        STATE_FILE.write_text(
            json.dumps({"db_url": db_url, "redis_url": redis_url, "port": settings.port, "pid": os.getpid()})
        )

        supervisor.spawn("web", [sys.executable, str(ROOT / "run_web.py")], env)
        base = f"http://{settings.listen_host}:{settings.port}"
        _wait_http_ok(base + "/health/ready", supervisor)
        supervisor.spawn("worker", [sys.executable, str(ROOT / "run_worker.py")], env)
        restarts: list[float] = []
        print(f"\nHireFlow is running at {base}  (WebSocket: {base.replace('http', 'ws', 1)}/api/ws)")
        print("Get a token:  make token NAME=alice   (or: .venv/bin/python -m hireflow token alice)")
        print("Ctrl-C stops everything.\n", flush=True)
        worker_cmd = [sys.executable, str(ROOT / "run_worker.py")]
        while True:
            problem = supervisor.dead()
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < WORKER_RESTART_WINDOW_S]
            if problem and problem.startswith("worker ") and len(restarts) < WORKER_RESTARTS:
                # A worker holds no state: start a new one rather than stop the stack.
                print(f"\n{problem}; starting a new worker", file=sys.stderr)
                supervisor.spawn("worker", worker_cmd, env)
                restarts.append(now)
            elif problem:
                print(f"\n{problem}; stopping everything", file=sys.stderr)
                return 1
            time.sleep(0.3)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"\nstart-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        STATE_FILE.unlink(missing_ok=True)
        lock.close()


if __name__ == "__main__":
    raise SystemExit(main())
