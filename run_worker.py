"""Start an arq worker: `python run_worker.py`. Several may run at once against one Redis."""

from __future__ import annotations

import logging
import sys

from hireflow.settings import Settings
from hireflow.workers.app import create_worker


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = settings.missing_for_production()
    if missing:
        print(f"missing required environment variables: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    create_worker(settings).run()


if __name__ == "__main__":
    main()
