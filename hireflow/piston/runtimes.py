"""The engine's runtimes, fetched from Piston and kept in memory for `piston_runtimes_ttl_s`.

Serving `GET /api/runtimes` may wait for the engine (briefly: the client's runtimes timeout); when it
does not answer, the last list known is served, or `[]`. Creating a run never waits for it: it looks
a language up in whatever is known (see `resolve`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from hireflow.piston.client import PistonClient, PistonError, Runtime

log = logging.getLogger(__name__)

# After a failed fetch, the engine is not asked again for this long (each request would wait otherwise).
RETRY_AFTER_FAILURE_S = 5.0


class RuntimeCatalog:
    def __init__(self, piston: PistonClient, *, ttl_s: float) -> None:
        self._piston = piston
        self._ttl_s = ttl_s
        self._known: list[Runtime] = []
        self._next_fetch = 0.0
        self._lock = asyncio.Lock()

    @property
    def known(self) -> list[Runtime]:
        return self._known

    async def list(self) -> list[Runtime]:
        """The runtimes, fetched again when the copy is older than the TTL (one fetch at a time)."""
        if time.monotonic() < self._next_fetch:
            return self._known
        async with self._lock:
            if time.monotonic() >= self._next_fetch:
                try:
                    self._known = await self._piston.runtimes()
                    self._next_fetch = time.monotonic() + self._ttl_s
                except PistonError as exc:
                    log.warning("could not list Piston runtimes: %s", exc.reason)
                    self._next_fetch = time.monotonic() + min(self._ttl_s, RETRY_AFTER_FAILURE_S)
        return self._known

    def resolve(self, language: str, version: str | None) -> tuple[str, str] | None:
        """`(language, version)` to ask Piston for, or None when the known runtimes rule it out.

        By name or alias, the newest version unless one is asked for. With no list known yet (the
        engine never answered), the name is passed on with the version selector `*` and Piston decides.
        """
        if not self._known:
            return language, version or "*"
        matches = [rt for rt in self._known if language == rt.language or language in rt.aliases]
        if version is not None:
            matches = [rt for rt in matches if rt.version == version]
        if not matches:
            return None
        best = max(matches, key=lambda rt: _version_key(rt.version))
        return best.language, best.version


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
