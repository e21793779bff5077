"""`/api/docs` in a real headless Chromium: Swagger UI, served from this server, renders every
operation with its parameters, request body and responses (the DOM after the page's scripts ran).

Chromium is Debian's `chromium` package; `make test` installs it when it is missing and the run is
root. Elsewhere this test is skipped, saying so."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import pytest

from hireflow.web.openapi import DOCUMENT

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
RENDER_BUDGET_MS = 20_000


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium: install Debian's `chromium` package (`make test` does, when run as root)")


async def rendered_dom(url: str) -> str:
    """The DOM once the page settled: Chromium's virtual time runs the scripts and their fetches."""
    flags = ["--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--mute-audio"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to sandbox as root
    process = await asyncio.create_subprocess_exec(
        browser(),
        *flags,
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.timeout(120)
async def test_docs_page_renders_every_operation_with_its_bodies(client):
    dom = await rendered_dom(str(client.make_url("/api/docs")))
    assert 'class="swagger-ui' in dom, dom[:2000]
    rendered = set(re.findall(r'class="opblock opblock-(\w+)[^"]*" id="operations-[^"]*"', dom))
    assert rendered, "no operation rendered: " + dom[:3000]
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert paths == set(DOCUMENT["paths"]), set(DOCUMENT["paths"]) ^ paths
    operations = sum(len(ops) for ops in DOCUMENT["paths"].values())
    assert dom.count('class="opblock-summary-method"') == operations
    # Request body (with its example), path parameters, response codes and the models section.
    assert "opblock-section-request-body" in dom  # create a session
    assert "Two Sum" in dom, "the NewSession example is shown"
    assert 'data-param-name="id"' in dom
    for text in ("Session is full", "Problem and difficulty are required", "user_unknown", "Authorize"):
        assert text in dom, text
    assert "NewSession" in dom and "SessionList" in dom
