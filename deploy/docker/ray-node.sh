#!/bin/sh
# One node of a multi-node s1serve group on a Ray cluster (vLLM's ray executor backend).
#
#   ray-node.sh leader [s1serve flags...]   start the Ray head, wait until all
#                                           RAY_CLUSTER_SIZE nodes have joined, then exec the
#                                           server with --distributed-executor-backend ray
#   ray-node.sh worker                      join the head at RAY_HEAD_ADDRESS and block
#
# Environment: RAY_CLUSTER_SIZE (nodes in the group, leader included), RAY_HEAD_ADDRESS
# (host of the leader), RAY_PORT (default 6379), RAY_JOIN_TIMEOUT (seconds, default 900).
# Under LeaderWorkerSet these come from LWS_GROUP_SIZE and LWS_LEADER_ADDRESS.
set -eu

role="${1:-}"
[ $# -gt 0 ] && shift
port="${RAY_PORT:-6379}"
size="${RAY_CLUSTER_SIZE:-${LWS_GROUP_SIZE:-}}"
head="${RAY_HEAD_ADDRESS:-${LWS_LEADER_ADDRESS:-}}"

alive_nodes() {
    python -c 'import ray; ray.init(address="auto", logging_level="ERROR"); print(sum(1 for n in ray.nodes() if n["Alive"]))' 2>/dev/null || echo 0
}

case "$role" in
leader)
    [ -n "$size" ] || { echo "ray-node.sh: RAY_CLUSTER_SIZE is not set" >&2; exit 2; }
    ray start --head --port="$port" --disable-usage-stats
    waited=0
    while [ "$(alive_nodes)" -lt "$size" ]; do
        if [ "$waited" -ge "${RAY_JOIN_TIMEOUT:-900}" ]; then
            echo "ray-node.sh: only $(alive_nodes) of $size nodes joined in ${waited}s" >&2
            exit 1
        fi
        sleep 5
        waited=$((waited + 5))
    done
    echo "ray-node.sh: all $size nodes joined"
    exec s1serve-entrypoint --distributed-executor-backend ray "$@"
    ;;
worker)
    [ -n "$head" ] || { echo "ray-node.sh: RAY_HEAD_ADDRESS is not set" >&2; exit 2; }
    exec ray start --address="$head:$port" --disable-usage-stats --block
    ;;
*)
    echo "usage: ray-node.sh leader [s1serve flags...] | ray-node.sh worker" >&2
    exit 2
    ;;
esac
