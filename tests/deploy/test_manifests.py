"""deploy/k8s/ and docker-compose.yml, checked offline: Kubernetes manifests against the Kubernetes JSON
schemas that kubernetes-validate ships (strict: unknown fields fail), the compose file against the
Compose Specification schema (vendored: compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0,
commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6), then what each must say for HireFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_web_deployment():
    web = by_kind("Deployment")["hireflow-web"]
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert "kill -TERM 1" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]} == {
        "hireflow-config",
        "hireflow-secrets",
    }
    assert container["resources"]["requests"]["cpu"], "the HPA scales on CPU relative to the request"
    service = by_kind("Service")["hireflow-web"]
    assert service["spec"].get("sessionAffinity", "None") == "None", "no sticky sessions needed"
    hpa = by_kind("HorizontalPodAutoscaler")["hireflow-web"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "hireflow-web"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_the_worker_deployment_and_disruption_budgets():
    worker = by_kind("Deployment")["hireflow-worker"]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "run_worker.py"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert {"name": "metrics", "containerPort": 9464} in container["ports"]
    assert set(by_kind("PodDisruptionBudget")) == {"hireflow-web", "hireflow-worker"}


def test_the_example_secret_holds_no_secret():
    secret = by_kind("Secret")["hireflow-secrets"]
    for name, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, name
    assert secret["stringData"]["REDIS_URL"].startswith("redis+sentinel://")


def test_compose_file_follows_the_compose_spec():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # Its `$schema` is draft-07 spelt without the trailing `#`, which jsonschema does not recognise.
    jsonschema.Draft7Validator(schema).validate(compose)


def test_compose_runs_without_dotenv_and_checks_the_worker():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("web", "worker"):
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
    probe = " ".join(services["worker"]["healthcheck"]["test"])
    assert "9464/metrics" in probe, "the worker's health check asks the worker, not PID 1"
