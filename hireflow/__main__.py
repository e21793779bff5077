"""`python -m hireflow token NAME`: create a development user and print a session token for a day.
`python -m hireflow piston-install [LANGUAGE…]`: install javascript, python and java on PISTON_URL."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

from hireflow.dev import STATE_FILE
from hireflow.devkeys import ProductionRefused, mint
from hireflow.settings import Settings
from hireflow.store import mongo
from hireflow.store.users import Profile, UserRepo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hireflow", description="HireFlow development commands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = commands.add_parser(
        "token",
        help="create a development user and print a session token valid for a day",
        description="Create (once) the development user NAME and print a session token for it, valid for a day. "
        "Needs `make dev` running (or DB_URL); refused when NODE_ENV=production.",
    )
    token.add_argument("name", metavar="NAME", help="display name of the user, e.g. alice")
    piston = commands.add_parser(
        "piston-install",
        help="install the languages the frontend offers into the Piston engine at PISTON_URL",
        description="Install runtimes into the Piston engine at PISTON_URL (default: javascript, python, java).",
    )
    piston.add_argument("languages", metavar="LANGUAGE", nargs="*", help="languages to install")
    return parser


async def _create_user(db_url: str, name: str) -> str:
    client, db = mongo.connect(db_url, timeout_ms=5000)
    try:
        slug = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "user"
        clerk_id = f"user_dev_{slug}"
        await mongo.ensure_indexes(db)
        await UserRepo(db).insert_if_missing(
            Profile(clerk_id=clerk_id, name=name, email=f"{slug}@hireflow.dev", profile_image="")
        )
        return clerk_id
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 0 after --help, 2 on a usage error
    if args.command == "piston-install":
        return _piston_install(args.languages)
    name = args.name.strip()
    if not name:
        parser.error("NAME must not be empty")
    settings = Settings()
    if settings.node_env == "production":
        print("refused: development tokens cannot be minted when NODE_ENV=production", file=sys.stderr)
        return 2
    db_url = settings.db_url
    if not db_url and STATE_FILE.exists():
        db_url = json.loads(STATE_FILE.read_text())["db_url"]
    if not db_url:
        print("no database: start `make dev` first (or set DB_URL)", file=sys.stderr)
        return 2
    clerk_id = asyncio.run(_create_user(db_url, name))
    try:
        print(mint(settings, clerk_id))
    except ProductionRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


def _piston_install(languages: list[str]) -> int:
    from hireflow.piston.install import install

    url = Settings().piston_url
    if not url:
        print("PISTON_URL is not set", file=sys.stderr)
        return 2
    return asyncio.run(install(url, languages))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
