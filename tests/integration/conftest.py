"""Session-wide real servers: a tiny random s1-format model and the embedded SmolLM2 default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.cpus import off_the_engine_cpu
from tests.integration.server_process import ServerProcess

# An explicit KV cache size skips the CPU backend's warm-up pass and memory probing: faster, steadier starts.
ENGINE_ARGS = [
    "--max-model-len",
    "1024",
    "--dtype",
    "float32",
    "--seed",
    "0",
    "--kv-cache-memory-bytes",
    "268435456",
    "--block-size",
    "32",
]


@pytest.fixture(scope="session")
def tiny_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "tiny-server.log"
    args = [
        "--model",
        str(tiny_model),
        "--served-model-name",
        "tiny",
        "--reasoning-effort-budgets",
        "minimal=5,low=7,medium=21",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
    ]
    server = ServerProcess([*args, *ENGINE_ARGS], log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny(tiny_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def smol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded default model, started exactly as the README starts it (no --model)."""
    log = tmp_path_factory.mktemp("logs") / "smol-server.log"
    server = ServerProcess(["--max-model-len", "2048", "--kv-cache-memory-bytes", "1073741824"], log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol(smol_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{smol_server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(autouse=True)
def _client_off_the_engine_cpu() -> Iterator[None]:
    """The test process leaves the engine's core to the engine (tests/cpus.py)."""
    with off_the_engine_cpu():
        yield
