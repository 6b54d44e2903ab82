"""One forced choice as one vLLM streaming-input request, continued chunk by chunk.

vLLM 0.32's `AsyncLLM.generate()` takes an async generator of `StreamingInput` chunks as its
prompt: one resumable engine request. When a chunk stops (a stop token, EOS, its max tokens)
the request pauses holding its KV blocks; the next chunk's token ids are appended and it is
scheduled ahead of new arrivals. The engine keeps every generated token of the stopped chunk
except the last sampled one, which was never fed back. Budget forcing drops exactly that token
on an end attempt; after a length stop the next chunk carries it again.

A session cannot rewind: a decision that keeps fewer tokens than the engine holds, a round
with stop strings, or one under a grammar runs as a resubmitted round (see `forced.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from server.vllm_compat import CompletionOutput, RequestOutput, SamplingParams, StreamingInput, tokens_input

# generate() keywords that only matter under a grammar: a streaming-input request and a probe
# (which never has one) leave them out.
GRAMMAR_ONLY_KWARGS = ("reasoning_ended", "reasoning_parser_kwargs")


def session_compatible(params: SamplingParams) -> bool:
    """Whether a round with these params can be a chunk: vLLM refuses stop strings in
    streaming input, and a grammar is set up once per engine request."""
    return not params.stop and params.structured_outputs is None and params.n == 1


class ForcingSession:
    """A streaming-input engine request that one forced choice continues round by round."""

    def __init__(
        self,
        engine: Any,
        engine_id: str,
        params: SamplingParams,
        kwargs: dict[str, Any],
        cache_salt: str | None = None,
    ) -> None:
        self.engine = engine
        self.engine_id = engine_id
        self._params = params  # validated once for the whole request; each chunk brings its own
        self._kwargs = {k: v for k, v in kwargs.items() if k not in GRAMMAR_ONLY_KWARGS}
        self._cache_salt = cache_salt
        self._inputs: asyncio.Queue[StreamingInput | None] = asyncio.Queue()
        self._outputs: AsyncGenerator[RequestOutput, None] | None = None
        self.held: list[int] = []  # the ids (prompt included) in the engine once a chunk stopped
        self.chunks = 0
        self._last_sent = False  # no chunk may follow: the engine finishes after this one

    def continues(self, target: Sequence[int]) -> bool:
        """Whether `target` extends what the engine holds, by at least one token (an empty chunk
        is refused by vLLM), so it can be the next chunk."""
        if self._last_sent:
            return False
        if self._outputs is None:
            return len(target) > 0
        n = len(self.held)
        return len(target) > n and list(target[:n]) == self.held

    async def _input_stream(self) -> AsyncIterator[StreamingInput]:
        while (item := await self._inputs.get()) is not None:
            yield item

    async def run(
        self, target: Sequence[int], params: SamplingParams, *, last: bool
    ) -> AsyncIterator[CompletionOutput]:
        """Send `target`'s new ids as the next chunk and yield its outputs (delta) until it stops.

        `last`: nothing follows this chunk, so the engine finishes the request when it stops.
        """
        new = list(target[len(self.held) :]) if self._outputs is not None else list(target)
        # A fresh list: vLLM extends the first chunk's prompt list in place with later chunks.
        self._inputs.put_nowait(StreamingInput(tokens_input(new, cache_salt=self._cache_salt), params))
        if last:
            self._inputs.put_nowait(None)
            self._last_sent = True
        if self._outputs is None:
            self._outputs = self.engine.generate(self._input_stream(), self._params, self.engine_id, **self._kwargs)
        self.chunks += 1
        generated: list[int] = []
        while True:
            out = await self._outputs.__anext__()
            o = out.outputs[0]
            generated.extend(o.token_ids)
            yield o
            if o.finish_reason is not None:
                break
        self.held = list(target) + generated[:-1]

    async def close(self, *, abort: bool = False) -> None:
        """End the engine request; a paused session holds KV blocks until then.

        After its last chunk ran to the end the engine has finished it; otherwise (paused
        between chunks, cut short, `abort`) closing the output stream aborts it in the engine.
        """
        outputs, self._outputs = self._outputs, None
        if outputs is None:
            return
        try:
            if self._last_sent and not abort:
                async for _ in outputs:  # already finished: the stream ends at once
                    pass
        finally:
            await outputs.aclose()
