"""Kubernetes manifests: every kustomization builds, every object validates, and the timings,
selectors, names and parallelism settings agree with each other and with the server.

Validation: objects of built-in kinds are checked against the Kubernetes OpenAPI schemas that
kubernetes-validate ships (strict: unknown fields fail), for the oldest and newest Kubernetes
versions supported. Custom resources have no built-in schema, so for them this file checks a
known apiVersion/kind pair and validates the fields used against a hand-written subset of the
CRD schema (ServiceMonitor from prometheus-operator, LeaderWorkerSet from the LWS project),
with unknown fields rejected; the pod templates inside a LeaderWorkerSet are validated in full
as built-in PodTemplate objects.
"""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_helpers import (
    ALL_KUSTOMIZATIONS,
    K8S,
    SERVING_KUSTOMIZATIONS,
    by_kind,
    env_value,
    flag_value,
    kustomize,
    one,
    pod_templates,
    workloads,
)

DOCKERFILE_TEXT = (K8S.parents[1] / "Dockerfile").read_text()
KUBERNETES_VERSIONS = ["1.31", "1.37"]
OVERLAYS = [p for p in SERVING_KUSTOMIZATIONS if p != "base"]
MODEL_LOAD_SECONDS = 600  # a 32B model from a cold cache: 10+ minutes

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"]}},
    },
}
INT_OR_STRING = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+%?$"}]}
METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": INT_OR_STRING,
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                            "authorization": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}

LEADER_WORKER_SET = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["leaderWorkerTemplate"],
            "additionalProperties": False,
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "startupPolicy": {"enum": ["LeaderCreated", "LeaderReady"]},
                "rolloutStrategy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": ["RollingUpdate"]},
                        "rollingUpdateConfiguration": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"maxUnavailable": INT_OR_STRING, "maxSurge": INT_OR_STRING},
                        },
                    },
                },
                "networkConfig": {"type": "object"},
                "leaderWorkerTemplate": {
                    "type": "object",
                    "required": ["workerTemplate"],
                    "additionalProperties": False,
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "restartPolicy": {"enum": ["RecreateGroupOnPodRestart", "None"]},
                        "leaderTemplate": {"type": "object"},
                        "workerTemplate": {"type": "object"},
                        "subGroupPolicy": {"type": "object"},
                    },
                },
            },
        },
    },
}

CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): LEADER_WORKER_SET,
}


def validate(obj: dict, version: str) -> None:
    """Validate one object: built-in kinds fully, custom resources as described above."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM_RESOURCES:
        jsonschema.validate(obj, CUSTOM_RESOURCES[key])
        for role, template in pod_templates(obj):
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": f"{obj['metadata']['name']}-{role}"},
                "template": template,
            }
            kubernetes_validate.validate(wrapped, version, strict=True)
        return
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{key} is neither a built-in kind of Kubernetes {version} nor a known custom resource")


def containers(template: dict) -> list[dict]:
    return template["spec"]["containers"]


def server_containers(objects: list[dict]) -> list[tuple[dict, dict, dict]]:
    """(workload, pod template, container) for every container that runs the HTTP server."""
    out = []
    for workload in workloads(objects):
        for _role, template in pod_templates(workload):
            for c in containers(template):
                if any(p.get("name") == "http" for p in c.get("ports", [])):
                    out.append((workload, template, c))
    return out


def prestop_seconds(container: dict) -> int:
    pre = container.get("lifecycle", {}).get("preStop")
    if not pre:
        return 0
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    command = pre["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


def probe_window(probe: dict) -> int:
    return probe["periodSeconds"] * probe["failureThreshold"]


def gpus(container: dict) -> int:
    resources = container["resources"]
    requested = int(resources["requests"].get("nvidia.com/gpu", 0))
    assert requested == int(resources["limits"].get("nvidia.com/gpu", 0)), "GPU requests must equal limits"
    return requested


def all_args(container: dict) -> list[str]:
    return container.get("args", [])


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("path", ALL_KUSTOMIZATIONS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates(path, version):
    objects = kustomize(path)
    assert objects, f"{path} builds to nothing"
    for obj in objects:
        validate(obj, version)


def test_validation_rejects_broken_objects():
    """Control: the schemas above do reject mistakes, for built-in and custom kinds alike."""
    deployment = one(kustomize("base"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["periodSeconds"] = "10"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, "1.37")

    monitor = one(kustomize("base"), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, "1.37")

    lws = one(kustomize("overlays/multinode"), "LeaderWorkerSet")
    broken = copy.deepcopy(lws)
    broken["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, "1.37")
    lws["apiVersion"] = "leaderworkerset.x-k8s.io/v2"
    with pytest.raises(pytest.fail.Exception):
        validate(lws, "1.37")


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_serving_stack_is_complete(path):
    kinds = {o["kind"] for o in kustomize(path)}
    assert {"Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    assert "PersistentVolumeClaim" in kinds
    assert len(server_containers(kustomize(path))) == 1, "exactly one serving container per overlay"


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_grace_period_covers_prestop_and_drain(path):
    """The kubelet SIGKILLs after terminationGracePeriodSeconds: it must outlast preStop plus the
    server's drain timeout with room for the engine's shutdown."""
    for _workload, template, container in server_containers(kustomize(path)):
        drain = env_value(container, "S1SERVE_DRAIN_TIMEOUT") or flag_value(all_args(container), "--drain-timeout")
        assert drain is not None, "set the drain timeout explicitly"
        prestop = prestop_seconds(container)
        assert prestop >= 5, "preStop must let endpoint removal propagate before the drain starts"
        grace = template["spec"]["terminationGracePeriodSeconds"]
        assert grace >= prestop + int(drain) + 10, (grace, prestop, drain)


def test_multinode_worker_outlives_the_leader_drain():
    lws = one(kustomize("overlays/multinode"), "LeaderWorkerSet")
    roles = dict(pod_templates(lws))
    leader = containers(roles["leader"])[0]
    worker = containers(roles["worker"])[0]
    leader_done = prestop_seconds(leader) + int(env_value(leader, "S1SERVE_DRAIN_TIMEOUT"))
    assert prestop_seconds(worker) >= leader_done, "the later pipeline stages must stay up while the leader drains"
    assert roles["worker"]["spec"]["terminationGracePeriodSeconds"] > prestop_seconds(worker)


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_probes_fit_slow_model_loads(path):
    for _workload, _template, c in server_containers(kustomize(path)):
        startup, liveness, readiness = c["startupProbe"], c["livenessProbe"], c["readinessProbe"]
        assert startup["httpGet"]["path"] == "/health"
        assert liveness["httpGet"]["path"] == "/health"
        assert readiness["httpGet"]["path"] == "/ready", "draining pods must leave the Service"
        for probe in (startup, liveness, readiness):
            assert probe["httpGet"]["port"] == "http"
            assert probe["timeoutSeconds"] < probe["periodSeconds"]
        assert probe_window(startup) >= MODEL_LOAD_SECONDS
        assert "initialDelaySeconds" not in liveness, "the startup probe holds liveness back"
        assert probe_window(liveness) >= 60, "a busy engine must not be restarted on one slow answer"
        assert probe_window(readiness) <= 15, "a draining pod must leave rotation quickly"


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_selectors_reach_the_server_pods(path):
    objects = kustomize(path)
    [(_workload, template, container)] = server_containers(objects)
    pod_labels = template["metadata"]["labels"]
    service = one(objects, "Service")
    assert labels_match(service["spec"]["selector"], pod_labels)
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names

    monitor = one(objects, "ServiceMonitor")
    assert labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"

    pdb = one(objects, "PodDisruptionBudget")
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    for workload in workloads(objects):
        match = workload["spec"].get("selector", {}).get("matchLabels")
        if match:
            assert labels_match(match, pod_labels)


def test_service_does_not_send_traffic_to_ray_workers():
    objects = kustomize("overlays/multinode")
    roles = dict(pod_templates(one(objects, "LeaderWorkerSet")))
    selector = one(objects, "Service")["spec"]["selector"]
    assert labels_match(selector, roles["leader"]["metadata"]["labels"])
    assert not labels_match(selector, roles["worker"]["metadata"]["labels"])
    pdb = one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert labels_match(pdb, roles["worker"]["metadata"]["labels"]), "the budget covers the whole group"


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_autoscaler_scales_the_workload_on_queue_length(path):
    objects = kustomize(path)
    hpa = one(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    names = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in workloads(objects)}
    assert (target["apiVersion"], target["kind"], target["name"]) in names
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "s1serve_requests_waiting"
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= MODEL_LOAD_SECONDS


def test_prometheus_adapter_publishes_the_autoscaler_metric():
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    published = {rule["name"]["as"] for rule in values["rules"]["custom"]}
    hpa = one(kustomize("base"), "HorizontalPodAutoscaler")
    for metric in hpa["spec"]["metrics"]:
        assert metric["pods"]["metric"]["name"] in published
    for rule in values["rules"]["custom"]:
        assert rule["name"]["as"] in rule["seriesQuery"]
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


@pytest.mark.parametrize("path", ALL_KUSTOMIZATIONS)
def test_references_resolve(path):
    """Claims name a PVC of the same build; secrets come by reference; the image is rewritten."""
    objects = kustomize(path)
    claims = {o["metadata"]["name"] for o in by_kind(objects, "PersistentVolumeClaim")}
    for workload in workloads(objects):
        for _role, template in pod_templates(workload):
            for volume in template["spec"].get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims
            mounts = {v["name"] for v in template["spec"].get("volumes", [])}
            for c in containers(template):
                assert c["image"].startswith("registry.example.com/s1serve:"), c["image"]
                assert {m["name"] for m in c.get("volumeMounts", [])} <= mounts
                assert "/dev/shm" in {m["mountPath"] for m in c.get("volumeMounts", [])}
                for item in c.get("env", []):
                    if item["name"] in ("S1SERVE_API_KEY", "HF_TOKEN"):
                        assert "secretKeyRef" in item.get("valueFrom", {}), f"{item['name']} must come from a Secret"


@pytest.mark.parametrize("path", SERVING_KUSTOMIZATIONS)
def test_model_cache_is_mounted_where_the_image_expects_it(path):
    for _workload, template, c in server_containers(kustomize(path)):
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volume = mounts["/var/cache/s1serve"]
        claim = next(v for v in template["spec"]["volumes"] if v["name"] == volume)
        assert "persistentVolumeClaim" in claim
        assert "S1SERVE_CACHE=/var/cache/s1serve" in DOCKERFILE_TEXT


def test_single_gpu_overlay_uses_one_gpu():
    [(_w, _t, c)] = server_containers(kustomize("overlays/single-gpu"))
    assert gpus(c) == 1
    assert flag_value(all_args(c), "--tensor-parallel-size") in (None, "1")


def test_tp2_overlay_serves_s1_1_32b_over_two_gpus():
    [(_w, _t, c)] = server_containers(kustomize("overlays/tp2"))
    args = all_args(c)
    assert flag_value(args, "--model") == "simplescaling/s1.1-32B"
    assert flag_value(args, "--tensor-parallel-size") == "2"
    assert flag_value(args, "--dtype") == "bfloat16"
    assert gpus(c) == 2
    assert int(flag_value(args, "--max-model-len")) == 32768


def test_multinode_parallelism_matches_the_group():
    """tensor parallel = GPUs per pod (within a node), pipeline parallel = pods per group."""
    lws = one(kustomize("overlays/multinode"), "LeaderWorkerSet")
    size = lws["spec"]["leaderWorkerTemplate"]["size"]
    roles = dict(pod_templates(lws))
    leader, worker = containers(roles["leader"])[0], containers(roles["worker"])[0]
    args = all_args(leader)
    tp = int(flag_value(args, "--tensor-parallel-size"))
    pp = int(flag_value(args, "--pipeline-parallel-size"))
    assert tp == gpus(leader) == gpus(worker)
    assert pp == size
    assert leader["command"][-2:] == ["s1serve-ray-node", "leader"]
    assert worker["command"][-2:] == ["s1serve-ray-node", "worker"]
    assert lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert probe_window(leader["startupProbe"]) >= MODEL_LOAD_SECONDS + int(env_value(leader, "RAY_JOIN_TIMEOUT"))


def test_multinode_drops_the_single_pod_deployment():
    assert by_kind(kustomize("overlays/multinode"), "Deployment") == []


def test_training_job_runs_torchrun_across_indexed_pods():
    objects = kustomize("training")
    job = one(objects, "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"]
    template = spec["template"]
    [c] = containers(template)
    assert c["command"][-1] == "torchrun"
    args = c["args"]
    assert int(flag_value(args, "--nnodes")) == spec["completions"]
    assert int(flag_value(args, "--nproc-per-node")) == gpus(c)
    assert args[args.index("-m") + 1] == "training.sft"
    assert flag_value(args, "--node-rank") == "$(JOB_COMPLETION_INDEX)"

    service = one(objects, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert template["spec"]["subdomain"] == service["metadata"]["name"]
    assert labels_match(service["spec"]["selector"], template["metadata"]["labels"])
    host, port = flag_value(args, "--rdzv-endpoint").rsplit(":", 1)
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}", "rank 0 pod of the Job"
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert flag_value(args, "--output").startswith("/models/")
    assert "/models" in {m["mountPath"] for m in c["volumeMounts"]}


def test_every_kustomization_runs_the_same_image():
    """One release tag everywhere: an overlay that repeats the base's image rewrite must agree."""
    images = {
        c["image"]
        for path in ALL_KUSTOMIZATIONS
        for workload in workloads(kustomize(path))
        for _role, template in pod_templates(workload)
        for c in containers(template)
    }
    assert len(images) == 1, images
