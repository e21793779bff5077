"""What both entry points do first: read the settings once, configure logging, refuse to start in
production with required variables missing (one line naming all of them)."""

from __future__ import annotations

import sys

from hireflow.observability import configure_logging
from hireflow.settings import Settings


def load() -> Settings:
    settings = Settings()
    configure_logging(settings.node_env)
    missing = settings.missing_for_production()
    if missing:
        print(f"missing required environment variables: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    if settings.node_env == "production" and settings.inngest_dev:
        # Dev mode skips Inngest's request signatures: anyone could call the sync functions.
        print("INNGEST_DEV is refused when NODE_ENV=production (it disables signature checks)", file=sys.stderr)
        raise SystemExit(2)
    return settings
