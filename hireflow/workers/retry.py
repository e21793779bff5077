"""How long a job waits before its next try: exponential backoff with jitter, or what Stream said."""

from __future__ import annotations

import random

BASE_DELAY_S = 1.0
MAX_DELAY_S = 60.0


def backoff_s(job_try: int, retry_after_s: float | None = None) -> float:
    """Delay before try `job_try + 1`. A 429's reset time wins over the backoff."""
    if retry_after_s is not None:
        return max(0.05, retry_after_s) + random.uniform(0, 0.25)
    delay: float = min(MAX_DELAY_S, BASE_DELAY_S * 2.0 ** max(0, job_try - 1))
    return delay * random.uniform(0.5, 1.5)
