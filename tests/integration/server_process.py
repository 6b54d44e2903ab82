"""Start a real `s1serve serve` on a loopback port and wait until it is ready."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.servers import Server, free_port


class ServerProcess(Server):
    """`python -m server.cli serve ARGS` on a free loopback port, ready once /ready answers 200."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 600.0) -> None:
        port = free_port()
        command = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
        super().__init__(command, port, "/ready", log_path, timeout)
