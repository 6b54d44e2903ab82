"""One real server for the metrics tests: the tiny s1-format model, three API keys, JSON request logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.cpus import off_the_engine_cpu
from tests.integration.conftest import ENGINE_ARGS
from tests.integration.server_process import ServerProcess

KEYS = {"alice": "sk-alice-secret", "bob": "sk-bob-secret", "carol": "sk-carol-secret"}


@pytest.fixture(scope="session")
def metrics_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "metrics-server.log"
    keys = [arg for name, secret in KEYS.items() for arg in ("--api-key", f"{name}={secret}")]
    args = ["--model", str(tiny_model), "--served-model-name", "tiny", "--log-json", *keys]
    server = ServerProcess([*args, *ENGINE_ARGS], log)
    yield server
    server.stop()


def client(server: ServerProcess, name: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEYS[name], max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def alice(metrics_server: ServerProcess) -> openai.OpenAI:
    return client(metrics_server, "alice")


@pytest.fixture(scope="session")
def bob(metrics_server: ServerProcess) -> openai.OpenAI:
    return client(metrics_server, "bob")


@pytest.fixture(scope="session")
def carol(metrics_server: ServerProcess) -> openai.OpenAI:
    return client(metrics_server, "carol")


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(autouse=True)
def _client_off_the_engine_cpu() -> Iterator[None]:
    """The test process leaves the engine's core to the engine (tests/cpus.py)."""
    with off_the_engine_cpu():
        yield
