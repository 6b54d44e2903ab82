"""Real servers for the evaluation program's end-to-end tests: one at a time, each started at most once in a row.

The machine runs one model server at a time, so asking for one server stops the other; the s1serve
modules sort before the stock-server module, so a full run starts each server once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.servers import Server, start_stock
from tests.integration.server_process import ServerProcess

ARITHMETIC = Path(__file__).with_name("arithmetic.jsonl")  # five questions written for these tests
SMOL_ENGINE_ARGS = ["--max-model-len", "2048", "--kv-cache-memory-bytes", "1073741824"]


class OneServer:
    """Holds the one running server; starting a different kind stops the current one first."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.kind: str | None = None
        self.server: Server | None = None

    def get(self, kind: str) -> Server:
        if self.kind != kind:
            self.stop()
            self.server = self._start(kind)
            self.kind = kind
        assert self.server is not None
        return self.server

    def _start(self, kind: str) -> Server:
        if kind == "s1serve":
            # The embedded default model, as the README starts it (no --model).
            return ServerProcess(SMOL_ENGINE_ARGS, self.logs / "s1serve.log")
        # vLLM's own OpenAI server on the same model: no budget fields, no `thinking` report.
        from server.default_model import SERVED_NAME, ensure_default_model

        args = [*SMOL_ENGINE_ARGS, "--enforce-eager", "--dtype", "float32"]
        return start_stock(str(ensure_default_model()), SERVED_NAME, args, self.logs / "stock.log")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server, self.kind = None, None


@pytest.fixture(scope="session")
def one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneServer]:
    holder = OneServer(tmp_path_factory.mktemp("logs"))
    yield holder
    holder.stop()


@pytest.fixture(scope="module")
def s1serve(one_server: OneServer) -> Server:
    return one_server.get("s1serve")


@pytest.fixture(scope="module")
def stock_vllm(one_server: OneServer) -> Server:
    return one_server.get("stock")
