"""Reading /metrics bodies and running Debian's prometheus and promtool against them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.servers import Server

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
INSTALL_HINT = (
    "install Prometheus and promtool with: bash scripts/install-prometheus.sh (the Debian package 'prometheus')"
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: str) -> Samples:
    """Every sample of a text-format body, keyed by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(base_url: str, **headers: str) -> httpx.Response:
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    response.raise_for_status()
    return response


def tool(name: str) -> str:
    """A Prometheus binary; a missing one fails the test (CI installs the package)."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; {INSTALL_HINT}")
    return found


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=120)


def local_config(target: str, *, interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, pointed at `target`, scraping and evaluating every `interval`.

    Rule files become absolute paths into deploy/prometheus, so the real rules load.
    """
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config.setdefault("global", {}).update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config.get("rule_files", [])]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "s1serve"]
    assert len(jobs) == 1, "deploy/prometheus/prometheus.yml has one s1serve job"
    for job in jobs:
        job["static_configs"] = [{"targets": [target]}]
        job["scrape_interval"] = interval
    config["scrape_configs"] = jobs
    return config


class PrometheusProcess(Server):
    """A throwaway Prometheus on a loopback port with its own storage directory."""

    def __init__(self, config: dict[str, Any], folder: Path, port: int) -> None:
        config_path = folder / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        command = [
            tool("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        super().__init__(command, port, "/-/ready", folder / "prometheus.log", timeout=60)

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None
