# Sourced by the scripts/image-*.sh scripts: installs podman, runc and debootstrap with apt-get
# when missing, and points podman at a containers.conf that works on hosts where crun fails on
# hybrid cgroups (runc, cgroupfs) and where raising RLIMIT_NOFILE is not permitted (no default
# ulimits). Containers then run with --network=host.
# shellcheck shell=bash

IMAGE_WORK="${IMAGE_WORK:-build/image}"

image_podman_setup() {
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        echo "image: installing podman, runc and debootstrap with apt-get" >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            podman runc debootstrap fuse-overlayfs uidmap >/dev/null
    fi
    mkdir -p "$IMAGE_WORK"
    if [ -z "${CONTAINERS_CONF:-}" ]; then
        CONTAINERS_CONF="$(cd "$IMAGE_WORK" && pwd)/containers.conf"
        cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
        export CONTAINERS_CONF
    fi
}
