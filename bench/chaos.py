"""The chaos run: two web instances, two workers, the Stream fake, SecantusDB and Redis as real
processes under steady load (creates with Idempotency-Key retried until acknowledged, joins, ends,
lobby and session WebSocket subscribers that resume), and in turn: Redis killed for 10 s, the DB
paused for 6 s, a worker SIGKILLed, a web instance SIGKILLed, the DB restarted. After each, an audit
(tests/support/chaos.py) prints one row:

  missing      acknowledged sessions not stored (must be 0)
  twins        one create stored twice (0)
  unannounced  stored changes whose outbox is still there after the settle (0)
  stale views  a subscriber's view that differs from what is stored, or lacks an active session
               created since its last snapshot, after the settle (0)
  left pending sessions still pending or not synced with Stream after the settle (0)
  workers      worker processes alive (all)
  ws gaps      an event seq that skipped without a reset (0)
  5xx          requests answered 5xx during the fault (counted, not bounded)
  ready s      seconds from the fault's end until every web instance's /health/ready is 200
  settle s     seconds until the audit found nothing left to do

Usage: python bench/chaos.py [--rate CREATES_PER_S] [--fault NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.chaos import FAULTS, Audit, run_chaos


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=8.0, help="creates per second (joins/ends as many)")
    parser.add_argument("--fault", action="append", choices=list(FAULTS), help="default: all, in order")
    args = parser.parse_args()
    faults = args.fault or list(FAULTS)
    print(f"chaos run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rate:g} creates/s; faults: {', '.join(faults)}")
    with tempfile.TemporaryDirectory(prefix="hireflow-chaos-") as tmp:
        audits = await run_chaos(tmp, faults, creates_per_s=args.rate, warmup_s=8.0, after_s=5.0)
    print(Audit.header())
    for audit in audits:
        print(audit.row())
        for detail in audit.details:
            print("   ", detail)
    return 0 if all(a.clean for a in audits) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
