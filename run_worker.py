"""Start an arq worker: `python run_worker.py`. Several may run at once against one Redis."""

from __future__ import annotations

from hireflow import startup
from hireflow.workers.app import create_worker


def main() -> None:
    create_worker(startup.load()).run()


if __name__ == "__main__":
    main()
