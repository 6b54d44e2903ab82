"""The start-up sessions probe checks identity, not just stopping (a fake engine, pure logic).

`FakeEngine` stands in for vLLM's AsyncLLM: greedy "decoding" is a fixed function of the ids
so far, on plain requests and on streaming-input sessions alike (a session keeps all but the
last sampled id of a stopped chunk, as vLLM's does). A skewed fake continues sessions with
other ids than resubmission would: the probe must notice and fall back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from budget.formats import S1
from budget.rounds import FormatTokens
from server.engine.client import ForcingEngineClient
from server.engine.rounds import Codec
from server.vllm_compat import CompletionOutput, RequestOutput


def next_id(seq: list[int]) -> int:
    return (sum(seq) * 31 + len(seq)) % 97


class FakeEngine:
    """A stand-in for AsyncLLM's generate(): plain prompts and streaming-input sessions."""

    def __init__(self, session_skew: int = 0) -> None:
        self.skew = session_skew
        self.model_config = SimpleNamespace(max_model_len=4096)
        self.vllm_config = self.renderer = self.input_processor = None

    def _decode(self, seq: list[int], n: int, skew: int) -> list[int]:
        out: list[int] = []
        for _ in range(n):
            out.append((next_id(seq + out) + skew) % 97)
        return out

    @staticmethod
    def _output(request_id: str, ids: list[int], finish: str | None) -> RequestOutput:
        done = CompletionOutput(index=0, text="", token_ids=ids, cumulative_logprob=None, logprobs=None,
                                finish_reason=finish)  # fmt: skip
        return RequestOutput(request_id, None, [], None, [done], finished=finish is not None)

    async def generate(self, prompt: Any, params: Any, request_id: str, **_: Any) -> AsyncIterator[RequestOutput]:
        if isinstance(prompt, dict):
            ids = self._decode(list(prompt["prompt_token_ids"]), params.max_tokens, 0)
            yield self._output(request_id, ids, "length")
            return
        seq: list[int] = []
        async for chunk in prompt:
            seq += list(chunk.prompt["prompt_token_ids"])
            ids = self._decode(seq, chunk.sampling_params.max_tokens, self.skew)
            yield self._output(request_id, ids, "length")
            seq += ids[:-1]  # the last sampled id was never fed back

    async def abort(self, request_id: Any) -> None:
        return None


def client_on(engine: FakeEngine) -> ForcingEngineClient:
    codec = Codec(SimpleNamespace(encode=lambda text, **_: [len(text)], decode=lambda ids, **_: ""))
    return ForcingEngineClient(engine, FormatTokens.build(S1, codec.encode), codec)


def test_a_session_that_continues_as_resubmission_does_is_chosen() -> None:
    client = client_on(FakeEngine())
    why = asyncio.run(client.choose_forcing_path("auto"))
    assert client.forcing_path == "sessions" and "one token" in why and client.forcing_reason == why


def test_a_session_with_other_ids_falls_back_to_resubmission() -> None:
    client = client_on(FakeEngine(session_skew=1))
    why = asyncio.run(client.choose_forcing_path("auto"))
    assert client.forcing_path == "resubmission"
    assert "chunk 1 of a session gave ids" in why and client.forcing_reason == why
    with pytest.raises(ValueError, match="not possible"):
        asyncio.run(client.choose_forcing_path("sessions"))
