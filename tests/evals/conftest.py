"""Real servers for the evaluation program's end-to-end tests, one per test module (never two at once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.servers import Server, start_stock
from tests.integration.server_process import ServerProcess

ARITHMETIC = Path(__file__).with_name("arithmetic.jsonl")  # five questions written for these tests
SMOL_ENGINE_ARGS = ["--max-model-len", "2048", "--kv-cache-memory-bytes", "1073741824"]


@pytest.fixture(scope="module")
def s1serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`s1serve serve` on the embedded default model, as the README starts it (no --model)."""
    server = ServerProcess(SMOL_ENGINE_ARGS, tmp_path_factory.mktemp("logs") / "s1serve.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stock_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM's own OpenAI server on the same embedded model: no budget fields, no `thinking` report."""
    from server.default_model import SERVED_NAME, ensure_default_model

    args = [*SMOL_ENGINE_ARGS, "--enforce-eager", "--dtype", "float32"]
    server = start_stock(str(ensure_default_model()), SERVED_NAME, args, tmp_path_factory.mktemp("logs") / "stock.log")
    yield server
    server.stop()
