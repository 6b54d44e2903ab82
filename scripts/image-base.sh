#!/usr/bin/env bash
# Makes a base image for the Dockerfile's PYTHON_IMAGE from Debian's packages alone, for hosts
# that can reach a Debian mirror but no image registry: debootstrap a minimal bookworm with
# python3 and python3-venv, then `podman import` it. Its python3 is 3.11, so the wheelhouse must
# be built with a Python 3.11 (scripts/image-wheelhouse.sh).
#
#   bash scripts/image-base.sh [NAME]     # default NAME: localhost/s1serve-base:bookworm
#
# Does nothing when the image exists (S1SERVE_BASE_REBUILD=1 makes it again). S1SERVE_DEBIAN_MIRROR
# picks the mirror (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/image-podman.sh
source scripts/image-podman.sh
NAME="${1:-localhost/s1serve-base:bookworm}"
MIRROR="${S1SERVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
image_podman_setup

if podman image exists "$NAME" && [ "${S1SERVE_BASE_REBUILD:-0}" != 1 ]; then
    echo "image-base.sh: $NAME exists"
    exit 0
fi
ROOTFS="$IMAGE_WORK/rootfs"
rm -rf "$ROOTFS"
echo "image-base.sh: debootstrap bookworm from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$ROOTFS" "$MIRROR" >"$IMAGE_WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$IMAGE_WORK/debootstrap.log" >&2; echo "image-base.sh: debootstrap failed (log: $IMAGE_WORK/debootstrap.log)" >&2; exit 1; }
# The package lists and downloaded packages are not part of a base image (the Dockerfile runs
# apt-get update itself).
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
tar -C "$ROOTFS" -c . | podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$NAME" >/dev/null
rm -rf "$ROOTFS"
echo "image-base.sh: $NAME ($(podman image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%.0f MB", $1 / 1e6}'))"
