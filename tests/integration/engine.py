"""A real vLLM engine in this process with s1serve's forcing client over it, for engine tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from budget.controller import FormatTokens
from budget.formats import S1
from budget.spec import parse_thinking_budget
from server.engine.client import ForcingEngineClient
from server.engine.records import RequestRecord, current_record
from server.engine.rounds import Codec
from server.engine.xargs import BUDGET_KEY, spec_to_json
from tests.oracle.run import ENGINE, MESSAGES


class Engine:
    """A real AsyncLLM and the forcing client over it, driven from one event loop."""

    def __init__(self, model: Path, **engine_args: Any) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.loop = asyncio.new_event_loop()
        self.engine = self.run(_make(AsyncLLM, AsyncEngineArgs(model=str(model), **{**ENGINE, **engine_args})))
        tok = AutoTokenizer.from_pretrained(model)
        self.codec = Codec(tok)
        self.client = ForcingEngineClient(self.engine, FormatTokens.build(S1, self.codec.encode), self.codec)
        self.client.keep_special_tokens = True
        self.prompt = tok.encode(tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False),
                                 add_special_tokens=False)  # fmt: skip
        self._ids = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def params(self, budget: dict[str, Any] | None, max_tokens: int, **kw: Any) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        extra = {BUDGET_KEY: spec_to_json(parse_thinking_budget(budget))} if budget is not None else None
        kw.setdefault("temperature", 0.0)
        return SamplingParams(
            max_tokens=max_tokens,
            skip_special_tokens=False,
            output_kind=RequestOutputKind.DELTA,
            extra_args=extra,
            **kw,
        )

    def stream(self, params: Any, path: str) -> tuple[Any, RequestRecord]:
        """The client's output stream for one request on `path`, and its record."""
        from vllm.inputs.engine import tokens_input

        self.client.sessions = path == "sessions"
        self._ids += 1
        record = RequestRecord()
        token = current_record.set(record)
        try:
            gen = self.client.generate(tokens_input(list(self.prompt)), params, f"t{self._ids}")
        finally:
            current_record.reset(token)
        return gen, record

    def complete(self, params: Any, path: str) -> tuple[list[list[int]], RequestRecord]:
        gen, record = self.stream(params, path)

        async def collect() -> list[list[int]]:
            ids: list[list[int]] = [[] for _ in range(params.n)]
            async for out in gen:
                for o in out.outputs:
                    ids[o.index].extend(o.token_ids)
            return ids

        return self.run(collect()), record

    def holds_no_blocks(self) -> bool:
        """True when no engine request holds KV blocks (vLLM resets its prefix cache only then)."""
        return bool(self.run(self.engine.reset_prefix_cache()))


async def _make(cls: Any, args: Any) -> Any:
    return cls.from_engine_args(args)


def running(model: Path, **engine_args: Any) -> Iterator[Engine]:
    """An Engine for a fixture to yield, shut down with its event loop afterwards."""
    e = Engine(model, **engine_args)
    yield e
    e.engine.shutdown()
    pending = asyncio.all_tasks(e.loop)
    for task in pending:
        task.cancel()
    e.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    e.loop.close()
