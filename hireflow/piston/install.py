"""`python -m hireflow piston-install [LANGUAGE…]`: install the frontend's languages on the engine.

Asks the Piston at PISTON_URL to install the newest package of each language (`POST
/api/v2/packages`, what Piston's own `cli/index.js ppman install` does); the engine downloads them
from its package repository. Installing what is already installed is not an error.
"""

from __future__ import annotations

import sys

from hireflow.piston.client import PistonClient, PistonError

DEFAULT_LANGUAGES = ("javascript", "python", "java")
PACKAGES = {"javascript": "node", "typescript": "typescript", "python": "python", "java": "java"}
"""Piston's package for a language the frontend names (javascript runs on the `node` package)."""


async def install(piston_url: str, languages: list[str]) -> int:
    """Install each language; the exit status is 1 if any failed."""
    client = PistonClient(piston_url, timeout_s=600.0)
    failed = 0
    try:
        for language in languages or DEFAULT_LANGUAGES:
            package = PACKAGES.get(language, language)
            try:
                done = await client.install(package)
                print(f"{language}: installed {done.get('language', package)} {done.get('version', '')}".rstrip())
            except PistonError as exc:
                if "Already installed" in exc.reason:
                    print(f"{language}: already installed")
                    continue
                failed += 1
                print(f"{language}: {exc.reason}", file=sys.stderr)
    finally:
        await client.aclose()
    return 1 if failed else 0
