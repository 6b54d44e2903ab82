#!/usr/bin/env bash
# Builds the CPU image from the repository's Dockerfile with podman, runs it and checks it:
#   - air-gapped: the base image from Debian's packages (scripts/image-base.sh) and every wheel
#     from a wheelhouse (scripts/image-wheelhouse.sh, rebuilt only when its inputs change);
#   - the container runs as uid 10001 on the embedded default model, /health answers, a chat
#     capped at 16 thinking tokens reports exactly 16 (report and usage), a min budget inserts
#     waits, and the image's HEALTHCHECK command passes (and fails against a closed port);
#   - Debian's Prometheus with deploy/prometheus/ (only the scrape target rewritten) scrapes the
#     s1serve_ series and loads and evaluates every rule;
#   - `podman stop` drains a request in flight and the container exits 0 within the drain timeout;
#   - a rebuild after a source change reuses the dependency layer;
#   - prints the build time and the image size.
#
#   bash scripts/image-smoke.sh [all|build|check]
#
# `build` makes the base, the wheelhouse and the image; `check` runs the container checks and the
# rebuild on an image `build` made. CI builds while the tests run and checks after them.
#
# Needs root (or sudo) for apt-get, debootstrap and podman. Work files go to build/image/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/image-podman.sh
source scripts/image-podman.sh
TAG="${S1SERVE_IMAGE:-localhost/s1serve:cpu}"
BASE="${S1SERVE_BASE_IMAGE:-localhost/s1serve-base:bookworm}"
WHEELHOUSE="${S1SERVE_WHEELHOUSE:-$IMAGE_WORK/wheelhouse}"
DRAIN=60
NAME="s1serve-smoke-$$"
LOGS="$IMAGE_WORK/smoke"
PY=python3
CHECKS=(python3 scripts/image-checks.py)
PHASE="${1:-all}"
case "$PHASE" in
all | build | check) ;;
*)
    echo "usage: bash scripts/image-smoke.sh [all|build|check]" >&2
    exit 2
    ;;
esac

say() { echo "image-smoke: $*"; }
fail() {
    echo "image-smoke: FAILED: $*" >&2
    exit 1
}

WORK="$(mktemp -d)"
PROM_PID=""
cleanup() {
    if [ -n "$PROM_PID" ]; then kill "$PROM_PID" 2>/dev/null || true; fi
    if podman container exists "$NAME" 2>/dev/null; then
        podman logs "$NAME" >"$LOGS/container.log" 2>&1 || true
        podman rm -f "$NAME" >/dev/null 2>>"$LOGS/podman.log" || true
    fi
    podman rmi -f "$TAG-rebuild" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

image_podman_setup
mkdir -p "$LOGS"

BUILD=(podman build --format docker --network host --build-arg S1SERVE_DEVICE=cpu
    --build-arg "PYTHON_IMAGE=$BASE" --build-arg PIP_NO_INDEX=1 --build-context "wheelhouse=$WHEELHOUSE")
build() { # build TAG CONTEXT LOG: prints the seconds it took
    local start=$SECONDS
    if ! "${BUILD[@]}" -t "$1" "$2" >"$3" 2>&1; then
        tail -n 40 "$3" >&2
        fail "podman build failed (log: $3)"
    fi
    echo $((SECONDS - start))
}

if [ "$PHASE" != check ]; then
    bash scripts/image-base.sh "$BASE"

    # The wheelhouse is made once per pyproject.toml / setup.sh and reused by every build after.
    stamp="$(cat pyproject.toml scripts/setup.sh scripts/image-wheelhouse.sh | sha256sum | cut -c1-16)"
    if [ "$(cat "$WHEELHOUSE/.inputs" 2>/dev/null)" != "$stamp" ]; then
        bash scripts/image-wheelhouse.sh "$WHEELHOUSE"
        echo "$stamp" >"$WHEELHOUSE/.inputs"
    else
        say "wheelhouse $WHEELHOUSE is up to date"
    fi

    say "building $TAG"
    build_s="$(build "$TAG" . "$LOGS/build.log")"
    echo "$build_s" >"$LOGS/build-seconds"
    say "built $TAG in ${build_s} s; image size $(($(podman image inspect --format '{{.Size}}' "$TAG") / 1000000)) MB"
fi
[ "$PHASE" != build ] || exit 0

podman image exists "$TAG" || fail "no image $TAG: run bash scripts/image-smoke.sh build first"
build_s="$(cat "$LOGS/build-seconds" 2>/dev/null || echo "?")"
size="$(podman image inspect --format '{{.Size}}' "$TAG")"

port="$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
# vLLM's CPU backend needs more shared memory than the default 64 MB. The KV cache is sized
# exactly, since other engines may share the host.
podman run -d --name "$NAME" --network=host --shm-size 1g -e "S1SERVE_PORT=$port" -e "S1SERVE_DRAIN_TIMEOUT=$DRAIN" \
    "$TAG" --max-model-len 2048 --kv-cache-memory-bytes 1073741824 >/dev/null 2>"$LOGS/podman.log" \
    || { cat "$LOGS/podman.log" >&2; fail "podman run failed"; }
# (Without systemd podman cannot schedule the HEALTHCHECK itself and says so in podman.log;
# the check below runs it with `podman healthcheck run`.)
say "container $NAME on port $port"
"${CHECKS[@]}" wait "$url" 900 || {
    podman logs "$NAME" 2>&1 | tail -n 40 >&2
    fail "the server did not start"
}

uids="$(podman exec "$NAME" python -c 'import os; print(os.getuid(), os.stat("/proc/1").st_uid)')"
[ "$uids" = "10001 10001" ] || fail "expected uid 10001 for the server and PID 1, got '$uids'"
say "runs as uid 10001 (PID 1 and exec)"
"${CHECKS[@]}" serve "$url" || fail "serving checks"

podman healthcheck run "$NAME" >/dev/null || fail "the image's HEALTHCHECK command failed on a healthy server"
health_cmd="$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$TAG")"
mapfile -t probe < <($PY -c 'import json, sys; t = json.loads(sys.argv[1]); assert t[0] == "CMD"; print(*t[1:], sep="\n")' "$health_cmd")
if podman exec -e S1SERVE_PORT=1 "$NAME" "${probe[@]}"; then
    fail "the HEALTHCHECK command ($health_cmd) passes against a closed port"
fi
say "HEALTHCHECK $health_cmd passes, and fails against a closed port"

# Prometheus with the compose stack's configuration and rules; the host network replaces the
# compose network alias s1serve:8000.
bash scripts/install-prometheus.sh >/dev/null
prom_port="$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cp deploy/prometheus/prometheus.yml deploy/prometheus/rules.yml "$WORK/"
sed -i -e "s/\"s1serve:8000\"/\"127.0.0.1:$port\"/" -e "s/\"localhost:9090\"/\"127.0.0.1:$prom_port\"/" "$WORK/prometheus.yml"
grep -q "127.0.0.1:$port" "$WORK/prometheus.yml" || fail "deploy/prometheus/prometheus.yml no longer targets s1serve:8000"
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "promtool rejects deploy/prometheus/"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$LOGS/prometheus.log" 2>&1 &
PROM_PID=$!
"${CHECKS[@]}" prometheus "http://127.0.0.1:$prom_port" deploy/prometheus/rules.yml || fail "Prometheus checks (log: $LOGS/prometheus.log)"
kill "$PROM_PID"
wait "$PROM_PID" 2>/dev/null || true
PROM_PID=""

# SIGTERM with a request in flight: it finishes, and the container exits 0 before the drain
# timeout runs out.
"${CHECKS[@]}" stream "$url" "$WORK/stream.json" &
stream_pid=$!
for _ in $(seq 120); do
    [ -e "$WORK/stream.json.started" ] && break
    sleep 0.5
done
[ -e "$WORK/stream.json.started" ] || fail "the streamed request did not start"
[ ! -e "$WORK/stream.json" ] || fail "the streamed request finished before the stop"
start=$SECONDS
podman stop -t $((DRAIN + 30)) "$NAME" >/dev/null 2>>"$LOGS/podman.log" || fail "podman stop failed (log: $LOGS/podman.log)"
stop_s=$((SECONDS - start))
wait "$stream_pid" || fail "the streamed request failed during the drain"
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$NAME")"
[ "$exit_code" = 0 ] || fail "the container exited $exit_code after SIGTERM"
[ "$stop_s" -lt "$DRAIN" ] || fail "podman stop took ${stop_s} s, the drain timeout is $DRAIN s"
podman logs "$NAME" >"$LOGS/container.log" 2>&1
grep -q "draining: finishing 1 in-flight" "$LOGS/container.log" || fail "the server logged no drain of the request"
$PY - "$WORK/stream.json" <<'EOF' || fail "the in-flight request did not finish during the drain: $(cat "$WORK/stream.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["error"] is None and r["finish_reason"] and r["thinking"]["thinking_tokens"] == r["expected_thinking_tokens"], r
EOF
say "podman stop drained the in-flight request and exited 0 in ${stop_s} s (drain timeout $DRAIN s)"

# Source-only change: the dependency layer (the first setup.sh run) comes from the cache.
mkdir -p "$WORK/context"
tar -c --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./shared . | tar -x -C "$WORK/context"
echo "# source-only change" >>"$WORK/context/server/__init__.py"
rebuild_s="$(build "$TAG-rebuild" "$WORK/context" "$LOGS/rebuild.log")"
step_after() { # the line after the first STEP line matching $1
    awk -v pattern="$1" 'found { print; exit } $0 ~ /STEP/ && index($0, pattern) { found = 1 }' "$LOGS/rebuild.log"
}
[[ "$(step_after "bash scripts/setup.sh")" == *"Using cache"* ]] || fail "the rebuild reinstalled the dependencies (log: $LOGS/rebuild.log)"
[[ "$(step_after "COPY . .")" != *"Using cache"* ]] || fail "the rebuild did not see the source change (log: $LOGS/rebuild.log)"
say "rebuild after a source change: dependency layer cached, ${rebuild_s} s"

say "OK: build ${build_s} s, rebuild ${rebuild_s} s, image $TAG $((size / 1000000)) MB"
