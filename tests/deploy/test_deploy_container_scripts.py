"""The scripts the image runs: entrypoint (env to flags), health check and the Ray node launcher.

Each runs for real under /bin/sh or Python, with stand-ins for s1serve and ray on PATH that
record the arguments they were given.
"""

from __future__ import annotations

import http.server
import os
import socket
import sys
import threading

import pytest
from deploy_helpers import DEPLOY, run

SCRIPTS = DEPLOY / "docker"


def recorder(bin_dir, name: str, body: str = "") -> None:
    """A fake command that appends its arguments, one per line then '--end--', to calls.log."""
    path = bin_dir / name
    path.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do printf "%s\\n" "$a"; done >> "$LOG_DIR/{name}.log"\n'
        f'echo --end-- >> "$LOG_DIR/{name}.log"\n' + body
    )
    path.chmod(0o755)


def calls(log_dir, name: str) -> list[list[str]]:
    log = log_dir / f"{name}.log"
    if not log.exists():
        return []
    out, current = [], []
    for line in log.read_text().splitlines():
        if line == "--end--":
            out.append(current)
            current = []
        else:
            current.append(line)
    return out


@pytest.fixture
def fake_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def env(**extra: str) -> dict[str, str]:
        base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG_DIR": str(tmp_path), "HOME": str(tmp_path)}
        return {**base, **extra}

    return bin_dir, env


def test_entrypoint_defaults_bind_all_interfaces_on_8000(fake_path, tmp_path):
    bin_dir, env = fake_path
    recorder(bin_dir, "s1serve")
    result = run(["sh", str(SCRIPTS / "entrypoint.sh")], env=env())
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path, "s1serve") == [["serve", "--host", "0.0.0.0", "--port", "8000"]]


def test_entrypoint_maps_environment_to_flags_and_appends_arguments(fake_path, tmp_path):
    bin_dir, env = fake_path
    recorder(bin_dir, "s1serve")
    result = run(
        ["sh", str(SCRIPTS / "entrypoint.sh"), "--max-model-len", "32768", "--port", "9000"],
        env=env(
            S1SERVE_PORT="8001",
            S1SERVE_MODEL="/models/my model",
            S1SERVE_SERVED_MODEL_NAME="s1.1-32B",
            S1SERVE_DRAIN_TIMEOUT="30",
            S1SERVE_THINKING_FORMAT="think",
            S1SERVE_EXTRA_ARGS="--tensor-parallel-size 2  --dtype bfloat16",
            S1SERVE_API_KEY="secret",
        ),
    )
    assert result.returncode == 0, result.stderr
    [argv] = calls(tmp_path, "s1serve")
    assert argv == [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8001",
        "--model",
        "/models/my model",  # a value with a space stays one argument
        "--served-model-name",
        "s1.1-32B",
        "--drain-timeout",
        "30",
        "--thinking-format",
        "think",
        "--tensor-parallel-size",
        "2",
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "32768",
        "--port",
        "9000",  # arguments come last, so they override the environment
    ]
    assert "secret" not in argv, "the API key must stay in the environment"


def test_entrypoint_execs_so_signals_reach_the_server(fake_path, tmp_path):
    bin_dir, env = fake_path
    recorder(bin_dir, "s1serve", 'echo "pid $$" >> "$LOG_DIR/pid.log"\n')
    script = f'echo "pid $$" >> "$LOG_DIR/pid.log"; exec sh {SCRIPTS / "entrypoint.sh"}'
    result = run(["sh", "-c", script], env=env())
    assert result.returncode == 0, result.stderr
    pids = (tmp_path / "pid.log").read_text().split("\n")
    assert pids[0] == pids[1], "the entrypoint must exec s1serve, not run it as a child"


class _Handler(http.server.BaseHTTPRequestHandler):
    status_by_path = {"/health": 200, "/ready": 503}

    def do_GET(self):  # noqa: N802 (http.server naming)
        self.send_response(self.status_by_path.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def healthcheck(port: int, *args: str) -> int:
    env = {**os.environ, "S1SERVE_PORT": str(port)}
    return run([sys.executable, str(SCRIPTS / "healthcheck.py"), *args], env=env).returncode


def test_healthcheck_passes_on_200_and_fails_on_503(http_port):
    assert healthcheck(http_port) == 0
    assert healthcheck(http_port, "/health") == 0
    assert healthcheck(http_port, "/ready") == 1


def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    assert healthcheck(free_port) == 1


@pytest.fixture
def ray_fakes(fake_path, tmp_path):
    bin_dir, env = fake_path
    recorder(bin_dir, "ray")
    recorder(bin_dir, "s1serve-entrypoint")
    recorder(bin_dir, "sleep")  # the join loop must not really wait
    # Stand-in for the Ray node count: reports one more joined node on every call.
    counter = tmp_path / "nodes"
    counter.write_text("0")
    python = bin_dir / "python"
    python.write_text(f"#!/bin/sh\nn=$(cat {counter}); n=$((n + 1)); echo $n > {counter}; echo $n\n")
    python.chmod(0o755)
    return env


def test_ray_leader_waits_for_the_group_then_serves_on_ray(ray_fakes, tmp_path):
    result = run(
        ["sh", str(SCRIPTS / "ray-node.sh"), "leader", "--pipeline-parallel-size=2"],
        env=ray_fakes(LWS_GROUP_SIZE="3"),
    )
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path, "ray") == [["start", "--head", "--port=6379", "--disable-usage-stats"]]
    assert len(calls(tmp_path, "sleep")) == 2, "waits until the third node joins"
    assert calls(tmp_path, "s1serve-entrypoint") == [
        ["--distributed-executor-backend", "ray", "--pipeline-parallel-size=2"]
    ]


def test_ray_leader_gives_up_when_workers_do_not_join(ray_fakes, tmp_path):
    result = run(
        ["sh", str(SCRIPTS / "ray-node.sh"), "leader"],
        env=ray_fakes(RAY_CLUSTER_SIZE="1000", RAY_JOIN_TIMEOUT="10"),
    )
    assert result.returncode == 1
    assert "nodes joined" in result.stderr
    assert calls(tmp_path, "s1serve-entrypoint") == []


def test_ray_worker_joins_the_leader(ray_fakes, tmp_path):
    result = run(
        ["sh", str(SCRIPTS / "ray-node.sh"), "worker"],
        env=ray_fakes(LWS_LEADER_ADDRESS="s1serve-0.s1serve.ns", RAY_PORT="6380"),
    )
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path, "ray") == [
        ["start", "--address=s1serve-0.s1serve.ns:6380", "--disable-usage-stats", "--block"]
    ]


@pytest.mark.parametrize(
    "role,missing", [("leader", "RAY_CLUSTER_SIZE"), ("worker", "RAY_HEAD_ADDRESS"), ("", "usage")]
)
def test_ray_node_rejects_missing_configuration(ray_fakes, tmp_path, role, missing):
    result = run(["sh", str(SCRIPTS / "ray-node.sh"), *([role] if role else [])], env=ray_fakes())
    assert result.returncode == 2
    assert missing in result.stderr
    assert calls(tmp_path, "ray") == []
