#!/usr/bin/env bash
# The forcing-path benchmark on one GPU, on a random-weight model of Qwen2.5-7B's shape built here
# (no hub access): both paths, the short and the long workload. Results: benchmarks/results/gpu-*.
#   bash scripts/gpu-bench.sh [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${1:-${TMPDIR:-/tmp}/s1serve-qwen2.5-7b-random}
ENGINE_ARGS=${ENGINE_ARGS:-"--max-model-len 4096 --dtype bfloat16 --seed 0 --gpu-memory-utilization 0.85"}
[ -f "$MODEL/config.json" ] || "$PY" -m benchmarks.random_model "$MODEL" --shape qwen2.5-7b
"$PY" -m benchmarks.run --model "$MODEL" --engine-args "$ENGINE_ARGS" --concurrency 1,16,64 \
    --reference-concurrency 16 --tag gpu-short
"$PY" -m benchmarks.run --model "$MODEL" --engine-args "$ENGINE_ARGS" --shape long --concurrency 16 \
    --reference-concurrency 16 --min-requests 16 --tag gpu-long
