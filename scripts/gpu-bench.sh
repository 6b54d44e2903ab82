#!/usr/bin/env bash
# The forcing-path benchmark on one GPU, on a random-weight model of Qwen2.5-7B's shape built here
# (no hub access): both paths, the short and the long workload, every scenario (A-F; F is C with
# answer probes that never agree, the probes' overhead), each level measured 3 times after a
# warm-up at its concurrency. Results: benchmarks/results/gpu-*.
#   bash scripts/gpu-bench.sh [MODEL_DIR]
#   bash scripts/gpu-bench.sh versions [VERSION ...]   # sessions and oracle tests on each vLLM release
# `versions` builds one venv per release (default: 0.32.0 0.33.0, the releases s1serve supports),
# each with GPU vLLM pinned to that release, checks the touch points against it and runs the
# sessions and oracle integration tests there, so one GPU session proves both releases.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "versions" ]; then
    shift
    status=0
    for version in "${@:-0.32.0 0.33.0}"; do
        for v in $version; do
            venv=".venv-vllm-$v"
            S1SERVE_DEVICE=gpu S1SERVE_VENV="$venv" bash scripts/setup.sh
            "$venv/bin/python" -m pip install -q "vllm==$v"
            echo "== vLLM $v: touch points"
            "$venv/bin/python" scripts/check_vllm_touch_points.py || status=1
            echo "== vLLM $v: sessions and oracle tests"
            "$venv/bin/python" -m pytest -q tests/unit/test_vllm_compat.py tests/integration/test_sessions.py \
                tests/integration/test_forcing_oracle.py tests/integration/test_harness_parity.py || status=1
        done
    done
    exit $status
fi
PY=${PY:-.venv/bin/python}
MODEL=${1:-${TMPDIR:-/tmp}/s1serve-qwen2.5-7b-random}
ENGINE_ARGS=${ENGINE_ARGS:-"--max-model-len 4096 --dtype bfloat16 --seed 0 --gpu-memory-utilization 0.85"}
[ -f "$MODEL/config.json" ] || "$PY" -m benchmarks.random_model "$MODEL" --shape qwen2.5-7b
"$PY" -m benchmarks.run --model "$MODEL" --engine-args "$ENGINE_ARGS" --concurrency 1,16,64 \
    --reference-concurrency 16 --tag gpu-short
"$PY" -m benchmarks.run --model "$MODEL" --engine-args "$ENGINE_ARGS" --shape long --concurrency 16 \
    --reference-concurrency 16 --min-requests 16 --tag gpu-long
