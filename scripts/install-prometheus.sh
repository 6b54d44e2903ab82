#!/usr/bin/env bash
# Prometheus and promtool for tests/metrics (Debian's 'prometheus' package). Idempotent: does
# nothing when promtool is already on PATH. Installs only; starts no service.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may ship a service that the install tries to start; tests run their own instance.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
fi
promtool --version | head -n 1
