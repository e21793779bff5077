"""Which browser origins may call the API with credentials (CORS) and open `/api/ws`.

Production and tests: exactly the `CLIENT_URL` origins. Development also accepts any loopback origin
(`http://localhost:<any port>`, `http://127.0.0.1:…`, `http://[::1]:…`), so the docs page served by
the backend itself, a second frontend on another port or a browser console all work without editing
`CLIENT_URL`. Only pages on the developer's own machine can have such an origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from yarl import URL

from hireflow.settings import Settings


def is_loopback(origin: str) -> bool:
    try:
        url = URL(origin)
    except ValueError:
        return False
    if url.scheme not in ("http", "https") or not url.host:
        return False
    if url.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return False


class OriginPolicy:
    def __init__(self, allowed: Iterable[str], *, any_loopback: bool) -> None:
        self._allowed = frozenset(origin.rstrip("/") for origin in allowed)
        self.any_loopback = any_loopback

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        return cls(settings.allowed_origins, any_loopback=settings.node_env == "development")

    def allows(self, origin: str) -> bool:
        origin = origin.rstrip("/")
        return origin in self._allowed or (self.any_loopback and is_loopback(origin))

    def refusal(self, origin: str) -> str:
        """Why `origin` is refused, for the response body and the log (the origin quoted, cut short)."""
        shown = origin if len(origin) <= 100 else origin[:100] + "…"
        why = f"Origin not allowed: {shown!r} is not in CLIENT_URL"
        if self.any_loopback:
            return why + " and is not a loopback origin"
        return why
