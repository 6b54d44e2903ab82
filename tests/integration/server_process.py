"""Start a real `s1serve serve` on a loopback port and wait until it is ready."""

from __future__ import annotations

from pathlib import Path

from benchmarks.servers import S1SERVE, Server, free_port, loopback_command
from tests.cpus import ALL_CPUS


class ServerProcess(Server):
    """`python -m server.cli serve ARGS` on a free loopback port, ready once /ready answers 200."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 600.0) -> None:
        port = free_port()
        # Every CPU, even when the test process is pinned off the engine's core (tests/cpus.py).
        super().__init__(loopback_command(S1SERVE, port, args), port, "/ready", log_path, timeout, cpus=ALL_CPUS)
