"""Injected faults, shared by the SaaS fakes (Stream, Piston): `fake.fail("POST", "^/path$", status=503)`."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    method: str
    path: str
    """Regular expression matched against the request path."""
    status: int = 500
    """0: no error answer, only the delay (a slow service)."""
    times: int = 1
    delay_s: float = 0.0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    """The faults still to inject, first match wins; each fires `times` times."""

    pending: list[Fault] = field(default_factory=list)

    def add(self, method: str, path: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path, **kwargs)
        self.pending.append(fault)
        return fault

    async def hit(self, request: web.Request) -> Fault | None:
        """Apply the first matching fault's delay; return it if it answers with an error status."""
        for fault in self.pending:
            if fault.times > 0 and fault.method == request.method and re.search(fault.path, request.path):
                fault.times -= 1
                if fault.delay_s:
                    await asyncio.sleep(fault.delay_s)
                return fault if fault.status else None
        return None
