"""The README and docs/ stand on their own: every link points at a file of this repository, and
nothing refers to material a person who cloned it does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTSIDE = ("seed", "../shared", "../frontend", "issue notes", "CONTRACT.md")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_point_into_the_repository(doc: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name} links to {target}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_reference_to_what_a_clone_does_not_have(doc: Path):
    text = doc.read_text().lower()
    for word in OUTSIDE:
        assert word.lower() not in text, f"{doc.name} mentions {word!r}"


def test_contract_docs_exist_and_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in ("docs/api.md", "docs/websocket.md"):
        assert (ROOT / name).is_file() and f"]({name})" in readme


def test_the_http_contract_names_every_route_and_message():
    from hireflow.models import NEW_SESSION_MESSAGES
    from hireflow.web.openapi import DOCUMENT

    api = (ROOT / "docs" / "api.md").read_text()
    for path in DOCUMENT["paths"]:
        if path != "/api/docs/{file}":
            assert f"{path}`" in api, path
    for message in (*NEW_SESSION_MESSAGES, "Session is full", "Unauthorized - invalid token"):
        assert message in api, message
    for code in ("token_missing", "token_expired", "token_invalid", "user_unknown", "headers_too_large"):
        assert f"`{code}`" in api, code
