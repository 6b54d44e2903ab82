"""Fixtures of the client compatibility tests (see common.py), one set per module."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.integration.clients.common import EFFORT_CAPS, MESSAGES, MODEL
from tests.integration.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tiny_server: ServerProcess) -> ServerProcess:
    """The session's tiny server: it runs with hermes tool parsing and minimal/low/medium effort caps."""
    return tiny_server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def no_whitespace(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """logit_bias that pushes every whitespace-only token down (see the module docstring)."""
    ids = [i for i in range(len(tokenizer)) if (s := tokenizer.decode([i])) and not s.strip()]
    assert ids, "the byte-level vocabulary has whitespace tokens"
    return {str(i): -100 for i in ids}


@pytest.fixture(scope="module")
def natural_thinking(client: openai.OpenAI) -> int:
    """How many tokens the greedy model thinks on QUESTION when nothing stops it.

    A cap below this binds: with greedy decoding the capped request thinks the same tokens up
    to the cap, so its report must say exactly the cap.
    """
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=200,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 190}},
    )
    report = r.model_dump()["choices"][0]["thinking"]
    assert not report["forced_end"], "the model ends its thinking on its own within the budget"
    assert report["thinking_tokens"] > max(EFFORT_CAPS.values()), report
    return report["thinking_tokens"]
