"""The fast cases of the chaos run (bench/chaos.py has all five): the whole backend as processes under
load, one fault, then an audit that must find nothing lost, doubled, hidden or stuck."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import Audit, run_chaos


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["redis killed 10 s", "db paused 6 s", "worker SIGKILL"])
async def test_a_fault_loses_nothing(fault: str, tmp_path: Path) -> None:
    (audit,) = await run_chaos(str(tmp_path), [fault], warmup_s=3.0, creates_per_s=4.0)
    print("\n" + Audit.header() + "\n" + audit.row())
    assert audit.clean, audit
    assert audit.answered_5xx >= 0  # reported, not bounded: a paused DB is allowed to answer 503
