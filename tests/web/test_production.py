"""Production mode: required variables, serving the built frontend, and no development shortcuts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hireflow.web.app import create_app
from tests.conftest import make_settings, serve

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "CLERK_", "DB_", "REDIS_", "NODE_"))}
    return {**keep, **extra}


def test_missing_variables_stop_start_up_with_one_line(tmp_path):
    for script in ("run_web.py", "run_worker.py"):
        result = subprocess.run(
            [sys.executable, str(ROOT / script)],
            env=clean_env(NODE_ENV="production", STREAM_API_KEY="k"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert lines == [
            "missing required environment variables: DB_URL, REDIS_URL, STREAM_API_SECRET, CLERK_SECRET_KEY"
        ], lines


def test_the_dev_token_command_refuses_production(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hireflow", "token", "alice"],
        env=clean_env(NODE_ENV="production", PYTHONPATH=str(ROOT)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "refused" in result.stderr


@pytest.fixture
async def prod_client(infra, db_name, fake_clerk, redis, mongo, tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>app</html>")
    (dist / "assets" / "index-3f2a1b.js").write_text("console.log(1)")
    (dist / "favicon.ico").write_bytes(b"icon")
    (tmp_path / "secret.txt").write_text("do not serve")
    settings = make_settings(infra, db_name, *fake_clerk, node_env="production", frontend_dist=str(dist))
    client = await serve(create_app(settings))
    yield client
    await client.close()


async def test_static_files_and_cache_headers(prod_client):
    resp = await prod_client.get("/assets/index-3f2a1b.js")
    assert resp.status == 200 and await resp.text() == "console.log(1)"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    resp = await prod_client.get("/favicon.ico")
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"


async def test_spa_fallback_but_not_for_the_api(prod_client):
    for path in ("/", "/dashboard", "/session/6b08943a297fa41fbfb72f67", "/assets/"):
        resp = await prod_client.get(path)
        assert resp.status == 200, path
        assert await resp.text() == "<html>app</html>"
    resp = await prod_client.get("/api/nope")
    assert resp.status == 404 and (await resp.json())["message"] == "Route not found"
    resp = await prod_client.post("/api/nope")
    assert resp.status == 404
    assert (await prod_client.get("/api/health")).status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
    ],
)
async def test_no_path_traversal(prod_client, path):
    from yarl import URL

    resp = await prod_client.get(URL(path, encoded=True))
    body = await resp.read()
    assert b"do not serve" not in body
    assert resp.status in (200, 404)


def test_compose_file_describes_the_stack():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"mongo", "redis", "web", "worker", "piston"}
    assert services["piston"]["image"] == "ghcr.io/engineer-man/piston" and services["piston"]["privileged"] is True
    assert "/piston/packages" in services["piston"]["volumes"][0]
    assert services["mongo"]["image"] == "mongo:7" and "--replSet" in services["mongo"]["command"]
    assert services["redis"]["image"] == "redis:7"
    for name in ("web", "worker"):
        svc = services[name]
        assert svc["build"] == "." and svc["environment"]["NODE_ENV"] == "production"
        assert "replicaSet=rs0" in svc["environment"]["DB_URL"]
        assert svc["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert svc["environment"]["PISTON_URL"] == "http://piston:2000"
    assert services["worker"]["command"] == ["python", "run_worker.py"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER hireflow" in dockerfile and "HEALTHCHECK" in dockerfile
