"""The Deploy guide (docs/deploy.md): the memory arithmetic is recomputed from the model architecture, and the
sizing table, overlays and commands it shows match the files in deploy/."""

from __future__ import annotations

import math
import re

import pytest
from deploy_helpers import K8S, REPO, SERVING_KUSTOMIZATIONS, flag_value, kustomize, one

DOC = (REPO / "docs" / "deploy.md").read_text()
GIB = 2**30

# s1.1-32B = Qwen2.5-32B architecture.
LAYERS, KV_HEADS, HEAD_DIM, Q_HEADS, PARAMS = 64, 8, 128, 40, 32.76e9
BYTES_BF16 = 2
WEIGHTS_GIB = PARAMS * BYTES_BF16 / GIB
KV_BYTES_PER_TOKEN = 2 * LAYERS * KV_HEADS * HEAD_DIM * BYTES_BF16
USABLE_GIB_PER_GPU = 0.9 * 80 - 3  # --gpu-memory-utilization 0.9 of 80 GiB, less activations
TENSOR_PARALLEL = [n for n in (1, 2, 4, 8) if KV_HEADS % n == 0 and Q_HEADS % n == 0]


def test_kv_cache_and_weight_figures():
    assert KV_BYTES_PER_TOKEN == 262_144 == 256 * 1024
    assert "262,144 bytes = 256 KiB" in DOC
    assert f"**{PARAMS * BYTES_BF16 / 1e9:.1f} GB**" in DOC
    assert f"{WEIGHTS_GIB:.1f} GiB" in DOC
    assert 32_768 * KV_BYTES_PER_TOKEN == 8 * GIB and "**8 GiB**" in DOC


def gpus_needed(total_gib: float) -> str:
    for tp in TENSOR_PARALLEL:
        if tp * USABLE_GIB_PER_GPU >= total_gib:
            return f"{tp} (TP={tp})"
    for pp in (2, 4):
        if 8 * pp * USABLE_GIB_PER_GPU >= total_gib:
            return f"{8 * pp} (TP=8, PP={pp})"
    raise AssertionError("model does not fit")


def sizing_rows() -> list[list[str]]:
    header = "| Sequences | Context (tokens) | KV cache (GiB) | Weights + KV (GiB) | 80 GB GPUs |"
    assert header in DOC
    table = DOC.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in table]


def test_sizing_table_matches_the_arithmetic():
    rows = sizing_rows()
    assert len(rows) >= 6
    for sequences, context, kv, total, gpus in rows:
        kv_gib = int(sequences) * int(context) * KV_BYTES_PER_TOKEN / GIB
        assert float(kv) == pytest.approx(kv_gib, abs=0.05), (sequences, context)
        assert float(total) == pytest.approx(WEIGHTS_GIB + kv_gib, abs=0.06), (sequences, context)
        assert gpus == gpus_needed(WEIGHTS_GIB + kv_gib), (sequences, context)


def test_tp2_figures_in_doc_and_overlay_agree():
    per_gpu_kv = USABLE_GIB_PER_GPU - WEIGHTS_GIB / 2
    tokens = per_gpu_kv * GIB / (KV_BYTES_PER_TOKEN / 2)
    full_sequences = math.floor(tokens / 32_768)
    assert f"{per_gpu_kv:.1f} GiB for KV cache" in DOC
    assert f"~{round(tokens / 1000)}k tokens, {full_sequences} concurrent" in DOC
    overlay = (K8S / "overlays" / "tp2" / "kustomization.yaml").read_text()
    assert f"~{per_gpu_kv:.1f} GiB of KV cache per GPU" in overlay
    assert f"~{round(tokens / 1000)}k tokens" in overlay and f"{full_sequences} concurrent" in overlay
    one_gpu_kv = USABLE_GIB_PER_GPU - WEIGHTS_GIB
    assert one_gpu_kv < 8 and f"leaves only {one_gpu_kv:.2f} GiB" in DOC


def test_documented_flags_match_the_tp2_overlay():
    deployment = one(kustomize("overlays/tp2"), "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    command = re.search(r"--model simplescaling/s1\.1-32B --tensor-parallel-size (\d+)", DOC)
    assert command and command.group(1) == flag_value(args, "--tensor-parallel-size")


@pytest.mark.parametrize("path", [*SERVING_KUSTOMIZATIONS[1:], "training"])
def test_every_kustomization_is_documented(path):
    assert path.split("/")[-1] + "/" in DOC
    assert (K8S / path / "kustomization.yaml").is_file()


def test_documented_drain_matches_the_manifests():
    deployment = one(kustomize("base"), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert f"terminationGracePeriodSeconds: {spec['terminationGracePeriodSeconds']}" in DOC
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert f"`S1SERVE_DRAIN_TIMEOUT` ({env['S1SERVE_DRAIN_TIMEOUT']} s)" in DOC
